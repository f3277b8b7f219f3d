"""The async hook-calling contract, on the plugin manager directly: pluggy's order, async
impls awaited, firstresult stopping at the first non-None awaited value."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from plugway import FailureDecision, hookimpl
from plugway.context import RequestContext, Target
from plugway.errors import PermissionDenied, PluginFailed, PluginLoadError
from plugway.gateway import load_gateway
from plugway.hookcall import HookRunner
from plugway.plugin_loader import load_plugins

TARGETS = (Target("a", "m1"), Target("b", "m2"))


def ctx() -> RequestContext:
    return RequestContext(endpoint="chat.completions", body={}, headers={}, model="x")


class AsyncDefers:
    @hookimpl(tryfirst=True)
    async def select_provider(self, ctx: RequestContext, candidates: Any) -> None:
        ctx.state.setdefault("calls", []).append("async-defers")


class AsyncAnswers:
    @hookimpl
    async def select_provider(self, ctx: RequestContext, candidates: Any) -> list[Target]:
        ctx.state.setdefault("calls", []).append("async-answers")
        await asyncio.sleep(0)
        return [candidates[1]]


class SyncAnswers:
    @hookimpl
    def select_provider(self, ctx: RequestContext, candidates: Any) -> list[Target]:
        ctx.state.setdefault("calls", []).append("sync-answers")
        return [candidates[0]]


def runner(*plugins: tuple[str, object]) -> HookRunner:
    return HookRunner(load_plugins(extra=plugins).pm)


def test_async_none_defers_and_async_answer_wins() -> None:
    hooks = runner(("sync", SyncAnswers()), ("async", AsyncAnswers()), ("defers", AsyncDefers()))
    c = ctx()
    plan = asyncio.run(hooks.call_first("select_provider", ctx=c, candidates=TARGETS))
    # tryfirst first; then the last registered; a coroutine is not taken for "an answer"
    assert plan == [TARGETS[1]]
    assert c.state["calls"] == ["async-defers", "async-answers"]


def test_order_is_pluggys_order() -> None:
    hooks = runner(("async", AsyncAnswers()), ("sync", SyncAnswers()))
    c = ctx()
    plan = asyncio.run(hooks.call_first("select_provider", ctx=c, candidates=TARGETS))
    assert plan == [TARGETS[0]] and c.state["calls"] == ["sync-answers"]


def test_builtin_failure_policy_runs_last_and_can_be_overridden() -> None:
    class AlwaysRetry:
        @hookimpl
        async def on_failure(self) -> FailureDecision:
            return FailureDecision.retry(0.5)

    hooks = runner(("retry", AlwaysRetry()))
    impls = [impl.plugin for impl in hooks.impls("on_failure")]
    # health tracking only observes (tryfirst, returns None); the policy runs last
    assert impls == ["health", "retry", "failure_policy"]


def test_impls_take_any_subset_of_arguments() -> None:
    seen: list[str] = []

    class OnlyCtx:
        @hookimpl
        def pre_route(self, ctx: RequestContext) -> None:
            seen.append(ctx.model)

    asyncio.run(runner(("only", OnlyCtx())).call_all("pre_route", ctx=ctx()))
    assert seen == ["x"]


def test_gateway_errors_propagate_and_others_name_the_plugin() -> None:
    class Refuses:
        @hookimpl
        async def pre_route(self, ctx: RequestContext) -> None:
            raise PermissionDenied("no")

    class Crashes:
        @hookimpl
        def pre_route(self, ctx: RequestContext) -> None:
            raise KeyError("boom")

    with pytest.raises(PermissionDenied):
        asyncio.run(runner(("refuses", Refuses())).call_all("pre_route", ctx=ctx()))
    with pytest.raises(PluginFailed, match="plugin 'crashes' failed in pre_route: KeyError") as e:
        asyncio.run(runner(("crashes", Crashes())).call_all("pre_route", ctx=ctx()))
    assert e.value.status == 500


def test_observer_hooks_fail_open() -> None:
    called: list[str] = []

    class Broken:
        @hookimpl(tryfirst=True)
        def post_response(self, ctx: RequestContext) -> None:
            raise RuntimeError("observer bug")

    class Fine:
        @hookimpl
        async def post_response(self, ctx: RequestContext) -> None:
            called.append("fine")

    hooks = runner(("fine", Fine()), ("broken", Broken()))
    asyncio.run(hooks.notify("post_response", ctx=ctx(), response=None))
    assert called == ["fine"]


def test_stream_chunk_chain_replaces_and_mutates() -> None:
    class Replace:
        @hookimpl(tryfirst=True)
        def stream_chunk(self, chunk: dict[str, Any]) -> dict[str, Any]:
            return {**chunk, "replaced": True}

    class Mutate:
        @hookimpl
        async def stream_chunk(self, chunk: dict[str, Any]) -> None:
            chunk["mutated"] = True

    hooks = runner(("mutate", Mutate()), ("replace", Replace()))
    out = asyncio.run(hooks.call_chain("stream_chunk", "chunk", {"id": 1}, ctx=ctx()))
    assert out == {"id": 1, "replaced": True, "mutated": True}


def test_unimplemented_hook_is_free() -> None:
    # the built-in config's gateway: idle plugins (filters without an action) are unregistered
    hooks = load_gateway(environ={}).hooks
    assert not hooks.has("stream_chunk")
    assert hooks.has("on_failure")


def test_wrappers_are_refused_at_load() -> None:
    class Wrapper:
        @hookimpl(wrapper=True)
        def pre_route(self, ctx: RequestContext) -> Any:
            return (yield)

    with pytest.raises(PluginLoadError, match="pre_route is a hook wrapper"):
        runner(("wrapper", Wrapper()))


def test_async_registration_hook_is_refused() -> None:
    class AsyncRegister:
        @hookimpl
        async def register_strategies(self, register: Any) -> None:
            pass

    with pytest.raises(PluginFailed, match="implements register_strategies as async"):
        runner(("bad", AsyncRegister())).call_sync_each(
            "register_strategies", lambda _p: {"register": lambda *a: None}
        )


def test_misspelled_hook_is_refused() -> None:
    class Typo:
        @hookimpl
        def pre_rout(self, ctx: RequestContext) -> None:
            pass

    with pytest.raises(PluginLoadError, match=r"plugin 'typo'.*pre_rout"):
        runner(("typo", Typo()))
