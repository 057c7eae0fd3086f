from relay.command import main

raise SystemExit(main())
