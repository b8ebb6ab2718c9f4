from batchtoon.cli import main

raise SystemExit(main())
