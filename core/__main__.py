from plugway.cli import main

raise SystemExit(main())
