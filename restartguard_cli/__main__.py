from restartguard_cli.main import main

raise SystemExit(main())
