from jepa_pipe.cli import main

raise SystemExit(main())
