from vhbackup.cli import main

raise SystemExit(main())
