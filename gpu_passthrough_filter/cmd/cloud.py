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
"""``gpu-passthrough-cloud``: what the live cloud can still hold, and why.

* ``capacity --flavor F``: how many more guests of F fit now, per host and
  in total;
* ``explain --flavor F [--host H]``: why F can or cannot land on each host,
  check by check, with numbers;
* ``fleet``: free GPUs, free aligned blocks of 1/2/4/8 GPUs, held and
  stranded GPUs, and a fragmentation index.

Reads Placement and nova's flavors through openstacksdk (``--os-cloud``
or the ``OS_*`` variables; admin credentials: Placement is admin-only) and
judges with the scheduler's policy core (:mod:`gpu_passthrough_filter.
policy.capacity`). Needs PCI in Placement. ``--format json`` for scripts.
Exit status 0, 1 on an error (a line says which), 2 for a bad request.
"""

import argparse
import json
import os
import sys

import openstack
import prometheus_client
from rich import console as rich_console
from rich import table as rich_table

from gpu_passthrough_filter.agent import client as client_mod
from gpu_passthrough_filter.fleet import flavors
from gpu_passthrough_filter.fleet import placement as fleet_placement
from gpu_passthrough_filter.policy import capacity

EXIT_OK, EXIT_FAILED, EXIT_BAD_REQUEST = 0, 1, 2


def build_parser():
    parser = argparse.ArgumentParser(
        prog='gpu-passthrough-cloud',
        description='What the live cloud can still hold, and why (PCI in '
                    'Placement; admin credentials).')
    parser.add_argument('--os-cloud', default=os.environ.get('OS_CLOUD'),
                        help='Cloud of clouds.yaml (default: $OS_CLOUD; '
                             'without one, the OS_* variables).')
    parser.add_argument('--format', choices=('table', 'json', 'prometheus'),
                        default='table',
                        help='prometheus: the exposition text, for '
                             'node_exporter\'s textfile collector (fleet '
                             'only).')
    parser.add_argument('--alias', action='append', default=[],
                        metavar='NAME=VENDOR:PRODUCT',
                        help='The GPU model of a nova [pci] alias that is '
                             'not named gpu-<vendor>-<product>; repeat it.')
    commands = parser.add_subparsers(dest='command', metavar='COMMAND')
    commands.required = True
    for name, func, text in (
            ('capacity', run_capacity, 'How many more guests of a flavor '
             'fit now, per host and in total.'),
            ('explain', run_explain, 'Why a flavor can or cannot land on '
             'each host.')):
        sub = commands.add_parser(name, help=text, description=text)
        sub.add_argument('--flavor', required=True, help='Name or id.')
        sub.add_argument('--host', help='This compute host only.')
        sub.set_defaults(func=func)
    sub = commands.add_parser(
        'fleet', help='Free GPUs, aligned blocks, stranded GPUs, '
                      'fragmentation.',
        description='Free GPUs, free aligned blocks of each size (one NUMA '
                    'node), held and stranded GPUs, and the fragmentation '
                    'index: the share of free GPUs in no free block of the '
                    'largest size.')
    sub.add_argument('--block-sizes', default='1,2,4,8',
                     help='Comma-separated sizes (default 1,2,4,8).')
    sub.add_argument('--guest-flavor',
                     help='The smallest GPU guest, for stranding (default: '
                          'the smallest flavor with pci_passthrough:alias).')
    sub.set_defaults(func=run_fleet)
    return parser


# -- what each command computes (a connection in, rows out) ---------------

def capacity_report(conn, flavor, aliases=(), host=None):
    """``{"flavor", "total", "hosts": [{"host", "guests", "blocker"}]}``."""
    request, needs = _flavor_request(conn, flavor, aliases)
    rows = [capacity.guests_that_fit(item.view, item.room, request, needs)
            for item in _hosts(conn, host)]
    return {'flavor': flavor, 'total': sum(row.guests for row in rows),
            'hosts': [{'host': row.host, 'guests': row.guests,
                       'blocker': row.blocker} for row in rows]}


def explain_report(conn, flavor, aliases=(), host=None):
    """``{"flavor", "hosts": [{"host", "fits", "gpus", "checks"}]}``."""
    request, needs = _flavor_request(conn, flavor, aliases)
    hosts = []
    for item in _hosts(conn, host):
        found = capacity.explain(item.view, item.room, request, needs)
        hosts.append({'host': found.host, 'fits': found.fits,
                      'gpus': list(found.gpus),
                      'checks': [list(check) for check in found.checks]})
    return {'flavor': flavor, 'hosts': hosts}


def fleet_report(conn, sizes=capacity.BLOCK_SIZES, guest_flavor=None,
                 aliases=()):
    """The :class:`~.capacity.FleetSummary` and the per-host rows."""
    hosts = _hosts(conn)
    smallest = _smallest_gpu_guest(conn, guest_flavor, aliases)
    summary = capacity.fleet_summary(hosts, smallest, sizes)
    return {
        'free_gpus': summary.free_gpus, 'held_gpus': summary.held_gpus,
        'stranded_gpus': summary.stranded_gpus,
        'fragmentation_index': round(summary.fragmentation, 4),
        'largest_block': summary.largest,
        'blocks': {str(size): count for size, count in
                   sorted(summary.blocks.items())},
        'smallest_gpu_guest': smallest,
        'hosts': [_fleet_row(item, summary.host_blocks[item.name])
                  for item in hosts if item.view.gpus]}


def _fleet_row(item, blocks):
    return {'host': item.name, 'gpus': len(item.view.gpus),
            'free_gpus': sum(1 for gpu in item.view.gpus if gpu.free),
            'held_gpus': item.held,
            'blocks': {str(size): count for size, count in
                       sorted(blocks.items())}}


def _hosts(conn, host=None):
    hosts = fleet_placement.read_hosts(client_mod.PlacementClient(conn),
                                       only=host)
    if host is not None and not hosts:
        raise LookupError('no compute host named %r in Placement' % host)
    return hosts


def _flavor_request(conn, name, aliases):
    flavor, extra = _flavor(conn, name)
    alias_map = flavors.parse_alias_map(aliases)
    request = flavors.request(flavor.vcpus, flavor.ram, extra, alias_map)
    needs = flavors.needs(flavor.vcpus, flavor.ram, flavor.disk,
                          flavor.ephemeral or 0, _swap_mb(flavor), extra)
    return request, needs


def _flavor(conn, name):
    flavor = conn.compute.find_flavor(name, ignore_missing=True)
    if flavor is None:
        raise LookupError('no flavor named %r' % name)
    extra = flavor.extra_specs
    if extra is None:
        extra = conn.compute.fetch_flavor_extra_specs(flavor).extra_specs
    return flavor, dict(extra or {})


def _swap_mb(flavor):
    swap = flavor.swap
    return int(swap) if str(swap or '').isdigit() else 0


def _smallest_gpu_guest(conn, name, aliases):
    if name:
        flavor, extra = _flavor(conn, name)
        return flavors.needs(flavor.vcpus, flavor.ram, 0, extra_specs=extra)
    best = None
    for flavor in conn.compute.flavors(details=True):
        extra = dict(flavor.extra_specs or {})
        if not extra.get(flavors.ALIAS_SPEC):
            continue
        key = (flavor.vcpus, flavor.ram)
        if best is None or key < best[0]:
            best = (key, flavors.needs(flavor.vcpus, flavor.ram, 0,
                                       extra_specs=extra))
    return best[1] if best else {'VCPU': 1, 'MEMORY_MB': 1024}


# -- the command line ------------------------------------------------------

def _not_prometheus(args):
    if args.format == 'prometheus':
        raise ValueError('--format prometheus is for "fleet" only')


def run_capacity(conn, args):
    _not_prometheus(args)
    report = capacity_report(conn, args.flavor, args.alias, args.host)
    if args.format == 'json':
        return report
    table = _table('Host', 'More guests', 'What stops the next one',
                   title='Capacity for flavor %s: %d more' % (
                       args.flavor, report['total']))
    for row in report['hosts']:
        table.add_row(row['host'], str(row['guests']), row['blocker'])
    return table


def run_explain(conn, args):
    _not_prometheus(args)
    report = explain_report(conn, args.flavor, args.alias, args.host)
    if args.format == 'json':
        return report
    table = _table('Host', 'Fits', 'Check', 'Verdict',
                   title='Flavor %s, host by host' % args.flavor)
    for row in report['hosts']:
        for index, (what, verdict) in enumerate(row['checks']):
            table.add_row(row['host'] if index == 0 else '',
                          ('yes' if row['fits'] else 'no') if index == 0
                          else '', what, verdict)
    return table


def run_fleet(conn, args):
    try:
        sizes = tuple(sorted({int(size) for size in
                              args.block_sizes.split(',')}))
    except ValueError:
        raise ValueError('--block-sizes %r: expected numbers, e.g. 1,2,4,8'
                         % args.block_sizes)
    report = fleet_report(conn, sizes, args.guest_flavor, args.alias)
    if args.format == 'json':
        return report
    if args.format == 'prometheus':
        return fleet_metrics_text(report)
    table = _table('Host', 'GPUs', 'Free', 'Held',
                   *['Free %d-GPU blocks' % size for size in sizes],
                   title='Fleet: %d free GPUs, %d held, %d stranded; '
                         'fragmentation %.2f' % (
                             report['free_gpus'], report['held_gpus'],
                             report['stranded_gpus'],
                             report['fragmentation_index']))
    for row in report['hosts']:
        table.add_row(row['host'], str(row['gpus']), str(row['free_gpus']),
                      str(row['held_gpus']),
                      *[str(row['blocks'][str(size)]) for size in sizes])
    table.add_row('total', '', str(report['free_gpus']),
                  str(report['held_gpus']),
                  *[str(report['blocks'][str(size)]) for size in sizes])
    return table


#: The fleet-wide series of ``fleet --format prometheus``: name, help, key.
FLEET_SERIES = (
    ('gpupt_fleet_free_gpus', 'Free GPUs (not in use, not held).',
     'free_gpus'),
    ('gpupt_fleet_held_gpus', 'GPUs held back (cordoned, unhealthy).',
     'held_gpus'),
    ('gpupt_fleet_stranded_gpus', 'Free GPUs on hosts without the vCPUs or '
     'RAM of the smallest GPU guest.', 'stranded_gpus'),
    ('gpupt_fleet_fragmentation_index', 'Share of free GPUs in no free '
     'block of the largest size.', 'fragmentation_index'),
)


def fleet_metrics_text(report):
    """The fleet report as Prometheus exposition text."""
    registry = prometheus_client.CollectorRegistry()
    for name, text, key in FLEET_SERIES:
        prometheus_client.Gauge(name, text, registry=registry).set(
            report[key])
    blocks = prometheus_client.Gauge(
        'gpupt_fleet_free_blocks', 'Free aligned blocks of GPUs (one NUMA '
        'node), by size.', ['size'], registry=registry)
    for size, count in report['blocks'].items():
        blocks.labels(size=size).set(count)
    host_free = prometheus_client.Gauge(
        'gpupt_host_free_gpus', 'Free GPUs of one host.', ['host'],
        registry=registry)
    for row in report['hosts']:
        host_free.labels(host=row['host']).set(row['free_gpus'])
    return prometheus_client.generate_latest(registry).decode()


def _table(*columns, title):
    return rich_table.Table(*columns, title=title)


def main(argv=None, conn=None):
    """Run one command. :param conn: a connection (tests); else built."""
    args = build_parser().parse_args(argv)
    try:
        if conn is None:
            conn = openstack.connect(cloud=args.os_cloud)
        output = args.func(conn, args)
    except (flavors.FlavorError, LookupError, ValueError) as exc:
        sys.stderr.write('error: %s\n' % exc)
        return EXIT_BAD_REQUEST
    except Exception as exc:  # an unreachable cloud, refused credentials
        sys.stderr.write('error: %s: %s\n' % (type(exc).__name__, exc))
        return EXIT_FAILED
    if isinstance(output, str):
        sys.stdout.write(output)
    elif isinstance(output, dict):
        print(json.dumps(output, indent=2, sort_keys=True))
    else:
        rich_console.Console(width=120).print(output)
    return EXIT_OK


if __name__ == '__main__':
    sys.exit(main())
