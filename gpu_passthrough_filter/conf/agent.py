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
"""``[agent]`` options of gpu-passthrough-agent's own configuration file."""

import socket

from oslo_config import cfg

GROUP = cfg.OptGroup(
    'agent',
    title='GPU passthrough agent',
    help='Discovery and the publishing loop of gpu-passthrough-agent.')

OPTS = [
    cfg.StrOpt(
        'sysfs_root',
        default='/',
        help="""
Directory under which the agent finds ``sys/`` (sysfs). ``/`` on a real
compute node; point it at a captured tree to inspect another machine or to
test.
"""),
    cfg.ListOpt(
        'extra_gpu_ids',
        default=[],
        help="""
Extra PCI ``vendor:device`` ids (hex, e.g. ``1bcf:001c``) to count as GPUs
in addition to display and 3D controllers (PCI classes 0x0300 and 0x0302).
Add accelerators that report another class (processing accelerators,
co-processors) and that you pass through whole.
"""),
    cfg.StrOpt(
        'pci_ids_path',
        help="""
Path of a ``pci.ids`` database for human-readable device names. Unset: the
first of the usual system locations found (``/usr/share/misc/pci.ids``,
``/usr/share/hwdata/pci.ids``); without one, names are the numeric ids.
"""),
    cfg.StrOpt(
        'host',
        default=socket.gethostname(),
        sample_default='<hostname>',
        help="""
Hypervisor hostname of this compute node as nova reports it (the name of
its root resource provider in Placement). Change it when nova-compute runs
with a ``[DEFAULT] host`` different from the system hostname.
"""),
    cfg.StrOpt(
        'state_dir',
        default='/var/lib/gpu-passthrough-filter',
        help="""
Directory of the agent's state that must survive restarts: the operator's
cordons (``cordons.json``, written by ``gpu-passthrough-agent cordon``).
Created when the first cordon is set. The daemon and the ``cordon``
commands must use the same directory.
"""),
    cfg.ListOpt(
        'publishers',
        default=['nova_pci', 'placement'],
        help="""
Publishers to run after each discovery, by entry point name in the
``gpu_passthrough_filter.publishers`` namespace: ``nova_pci`` (the nova
``[pci]`` config file), ``placement`` (host traits), ``json`` (the full
inventory).
"""),
    cfg.IntOpt(
        'interval',
        default=300,
        min=1,
        help="""
Seconds between two discoveries in ``gpu-passthrough-agent run``. GPUs
rarely change while a host runs; lower it only to see driver rebinding
sooner.
"""),
    cfg.FloatOpt(
        'backoff_initial',
        default=2.0,
        min=0.0,
        help="""
Seconds to wait before the first retry when Placement is unreachable, times
out or answers 5xx. Doubles on each failure, with jitter, up to
``backoff_max``.
"""),
    cfg.FloatOpt(
        'backoff_max',
        default=60.0,
        min=0.0,
        help="""
Longest wait, in seconds, between two retries of a publish. It bounds how
long after Placement comes back the agent publishes again: at most
``backoff_max`` plus one cycle (``cycle_timeout``).
"""),
    cfg.IntOpt(
        'health_settle_cycles',
        default=3,
        min=1,
        help="""
Readings in a row a GPU that was unhealthy (config space all ones, fatal
AER errors, no reset method, gone) must be healthy before ``run`` offers it
again. Damps a GPU that flaps; ``publish`` judges one reading only.
"""),
    cfg.PortOpt(
        'metrics_port',
        default=0,
        help="""
TCP port on which ``gpu-passthrough-agent run`` serves Prometheus metrics
at ``/metrics`` (per GPU: state and reason, offered, held, IOMMU verdict,
link speed and width, AER counters; per cycle: count, errors, duration,
last success). 0 (the default) serves nothing. The names are listed in
the agent guide.
"""),
    cfg.HostAddressOpt(
        'metrics_address',
        default='0.0.0.0',
        help="""
Address the metrics port listens on (``[agent] metrics_port``). The
metrics carry no secret, but name the host's PCI devices: bind to a
management network address where the default exposes too much.
"""),
    cfg.FloatOpt(
        'cycle_timeout',
        default=120.0,
        min=1.0,
        help="""
Seconds one discovery-and-publish cycle may spend talking to Placement, all
its requests together. Each request is also bounded by ``[placement]
timeout`` as a whole, not per read: a server that trickles its answer
cannot hold the agent. A cycle out of time counts as a failure and is
retried with backoff.
"""),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
