from goapp.cli import main

raise SystemExit(main())
