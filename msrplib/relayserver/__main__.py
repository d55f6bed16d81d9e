"""``python -m msrplib.relayserver REALM USER``: a users file line (see ``users.main``)."""

from msrplib.relayserver.users import main

raise SystemExit(main())
