from dlc.cli import main

raise SystemExit(main())
