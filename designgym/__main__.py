from designgym.cli import main

raise SystemExit(main())
