"""Flower's configuration for this project.

``celery -A workers flower`` reads it with no ``--conf``: importing the app
(``workers/app.py``) points Flower's ``conf`` option at this file, wherever the
package is installed, so the image (a wheel, started in an empty directory) and
a checkout run the same configuration. ``--conf=PATH`` or ``FLOWER_CONF`` still
choose another file.

Flower 2.x executes this file with tornado's ``parse_config_file`` and applies
every module-level name that is one of its options; names starting with ``_``
are ignored. Order of precedence: Flower's own ``FLOWER_*`` environment
variables, then this file, then the command line (``--address=0.0.0.0`` wins).
The Celery side (broker, result backend, queues) comes from ``-A workers``.

What it sets:

* ``address`` / ``port`` from FLOWER_ADDRESS (default 127.0.0.1: loopback unless
  told otherwise) and FLOWER_PORT (default 5555);
* ``basic_auth`` from FLOWER_BASIC_AUTH (``user:password[,user:password]``).
  Flower refuses to start without authentication: no FLOWER_BASIC_AUTH and no
  OAuth (``--auth`` / FLOWER_AUTH) ends it with one line and exit code 2.
  ``cachewarm stack up`` generates a password when none is set;
* ``read_only`` (Flower >= 2.1): on unless FLOWER_READ_ONLY says otherwise
  (``FLOWER_READ_ONLY=false``). Read-only Flower answers 403 to every action
  (revoke, terminate, shut down or resize a worker's pool, add or cancel a
  consumer, rate and time limits, applying or sending a task) and hides their
  buttons; watching is unchanged. Flower parses FLOWER_READ_ONLY itself (before
  this file), so only the default is set here. A Flower without the option
  ends with one line and exit code 2 rather than run with actions enabled;
* the task list's columns (name, arguments, state, result, runtime, worker);
* ``format_task``: a running task that reported PROGRESS (``update_state`` with
  ``{"done", "total"}``) shows ``progress done/total (pct)`` as its result.

Bad values end Flower with one line naming the variable and exit code 2, like
every other entry point. Nothing here connects to anything.
"""

import os
import sys

from tornado.options import options as _options

from cachewarm.errors import ConfigError as _ConfigError
from cachewarm.settings import get_settings as _get_settings

try:
    _settings = _get_settings()
except _ConfigError as _exc:
    print(f"error: {_exc}", file=sys.stderr)
    raise SystemExit(2) from None

address = _settings.flower_address
port = _settings.flower_port
if _settings.flower_logins:
    basic_auth = _settings.flower_logins
elif not (getattr(_options, "basic_auth", None) or getattr(_options, "auth", None)):
    print("error: FLOWER_BASIC_AUTH is not set: Flower would be open to anyone who reaches it. "
          "Set FLOWER_BASIC_AUTH=user:password (or use 'make up', which generates one).", file=sys.stderr)
    raise SystemExit(2)

# Watching, not acting, unless the operator asks (FLOWER_READ_ONLY=false).
if "read_only" not in _options:
    if os.environ.get("FLOWER_READ_ONLY", "true").strip().lower() not in ("0", "false", "f", "n", "no", "off"):
        print("error: this Flower has no read-only mode (flower >= 2.1 has it): it would let anyone with the "
              "login revoke tasks and shut down workers. Upgrade Flower, or set FLOWER_READ_ONLY=false to run it "
              "with actions enabled.", file=sys.stderr)
        raise SystemExit(2)
elif "FLOWER_READ_ONLY" not in os.environ:
    read_only = True

# Arguments and results next to names (tasks take names or ids, never item bodies);
# the name links to the task page, which shows the UUID.
tasks_columns = "name,state,args,kwargs,result,received,runtime,worker"


def format_task(task):
    """Show a running task's PROGRESS meta (from the result backend) as its result."""
    if task.state != "STARTED":
        return task
    from workers import app

    result = app.AsyncResult(task.uuid)
    info = result.info if result.state == "PROGRESS" else None
    if isinstance(info, dict) and info.get("total"):
        done, total = int(info.get("done", 0)), int(info["total"])
        task.result = f"progress {done}/{total} ({done / total:.0%})"
    return task
