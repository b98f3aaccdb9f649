# Licensed under the Apache License, Version 2.0 (the "License"); you may
# not use this file except in compliance with the License. You may obtain
# a copy of the License at
#
#      http://www.apache.org/licenses/LICENSE-2.0
#
# Unless required by applicable law or agreed to in writing, software
# distributed under the License is distributed on an "AS IS" BASIS, WITHOUT
# WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied. See the
# License for the specific language governing permissions and limitations
# under the License.
"""``cordon``, ``uncordon`` and ``cordons``: GPUs out of service on purpose.

``gpu-passthrough-agent cordon 0000:81:00.0 --reason "RMA 4711" --ttl 2d``
records the cordon in ``[agent] state_dir`` (it survives agent restarts),
then publishes once, as ``publish`` does, so that it acts at once: with PCI
in Placement the GPU's provider is reserved (no restart of nova-compute;
a guest on it keeps running); in legacy mode the GPU leaves ``[pci]
device_spec`` and nova-compute needs a restart (exit status 3 says so).
``--host`` cordons every GPU of the host. ``--no-publish`` only records it:
the daemon applies it at its next cycle.

Exit status: as ``publish`` (0, 3 restart nova-compute, 1 failed); 2 for a
malformed request.
"""

import json
import sys
import time

from gpu_passthrough_filter.agent import cordon
from gpu_passthrough_filter.agent import daemon
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.cmd import common
from gpu_passthrough_filter.cmd import publish

EXIT_BAD_REQUEST = 2


def add_parser(subparsers):
    """Register ``cordon``, ``uncordon`` and ``cordons``."""
    parser = subparsers.add_parser(
        'cordon', help='Take GPUs (or the host) out of service.',
        description='Record a cordon in [agent] state_dir, then publish '
                    'once so that it acts now. A cordoned GPU takes no new '
                    'guest; a guest already on it keeps running.')
    _add_targets(parser)
    parser.add_argument('--reason', required=True,
                        help='Why, for the logs, the nova file and '
                             '"cordons" (required).')
    parser.add_argument('--ttl', metavar='DURATION',
                        help='Expire after this long (90s, 30m, 2h, 1d, '
                             '1w); default: never.')
    parser.set_defaults(func=run_cordon)

    parser = subparsers.add_parser(
        'uncordon', help='Put cordoned GPUs (or the host) back in service.',
        description='Remove cordons, then publish once. A GPU that is '
                    'also unhealthy stays held until it is healthy.')
    _add_targets(parser)
    parser.set_defaults(func=run_uncordon)

    parser = subparsers.add_parser(
        'cordons', help='List the cordons in force.',
        description='The cordons of [agent] state_dir that have not '
                    'expired.')
    parser.add_argument('--format', choices=('table', 'json'),
                        default='table')
    common.add_config_arguments(parser)
    parser.set_defaults(func=run_list)


def _add_targets(parser):
    parser.add_argument('addresses', nargs='*', metavar='ADDRESS',
                        help='PCI address of a GPU (0000:81:00.0 or '
                             '81:00.0).')
    parser.add_argument('--host', action='store_true',
                        help='Every GPU of this host, present and future.')
    parser.add_argument('--no-publish', action='store_true',
                        help='Only record it; the daemon applies it at its '
                             'next cycle.')
    common.add_config_arguments(parser)


def _targets(args):
    targets = list(args.addresses) + ([cordon.HOST] if args.host else [])
    if not targets:
        raise cordon.CordonError('name at least one ADDRESS, or --host')
    return targets


def run_cordon(args):
    def change(book):
        ttl = cordon.parse_duration(args.ttl) if args.ttl else None
        added = book.cordon(_targets(args), args.reason, ttl)
        return ['%s %s' % (item.target, item.describe()) for item in added]
    return _change_and_publish(args, change)


def run_uncordon(args):
    def change(book):
        removed = book.uncordon(_targets(args))
        return ['%s uncordoned' % target for target in removed] or [
            'nothing was cordoned']
    return _change_and_publish(args, change)


def _change_and_publish(args, change):
    conf = _load(args)
    if conf is None:
        return common.EXIT_FAILED
    try:
        lines = change(cordon.CordonBook(conf.agent.state_dir))
    except cordon.CordonError as exc:
        sys.stderr.write('error: %s\n' % exc)
        return EXIT_BAD_REQUEST
    for line in lines:
        print(line)
    if args.no_publish:
        return common.EXIT_OK
    try:
        manager = daemon.load_publishers(conf)
    except exception.ConfigError as exc:
        sys.stderr.write('error: recorded, but not published: %s\n' % exc)
        return common.EXIT_FAILED
    return publish.publish_once(conf, manager)


def run_list(args):
    conf = _load(args)
    if conf is None:
        return common.EXIT_FAILED
    try:
        cordons = cordon.CordonBook(conf.agent.state_dir).active()
    except cordon.CordonError as exc:
        sys.stderr.write('error: %s\n' % exc)
        return common.EXIT_FAILED
    rows = [{'target': item.target, 'reason': item.reason,
             'since': _iso(item.since), 'until': _iso(item.until)}
            for item in sorted(cordons.values(), key=lambda c: c.target)]
    if args.format == 'json':
        print(json.dumps(rows, indent=2))
        return common.EXIT_OK
    from rich import console as rich_console
    from rich import table as rich_table
    table = rich_table.Table('Target', 'Reason', 'Since', 'Until')
    for row in rows:
        table.add_row(row['target'], row['reason'], row['since'],
                      row['until'] or 'never')
    rich_console.Console().print(table if rows else 'No cordon in force.')
    return common.EXIT_OK


def _load(args):
    try:
        return common.load(args)
    except exception.ConfigError as exc:
        common.setup_fallback_logging()
        sys.stderr.write('error: %s\n' % exc)
        return None


def _iso(stamp):
    if stamp is None:
        return None
    return time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(stamp))
