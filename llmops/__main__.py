from llmops.cli import main

raise SystemExit(main())
