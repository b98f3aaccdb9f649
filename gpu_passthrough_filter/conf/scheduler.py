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
"""``[gpu_passthrough]`` options, read by the filter and weigher in nova."""

from oslo_config import cfg

from gpu_passthrough_filter.policy import extra_specs

GROUP = cfg.OptGroup(
    'gpu_passthrough',
    title='GPU passthrough scheduling',
    help="""
Options of the GPUPassthroughFilter and GPUPassthroughWeigher, set in the
nova.conf of the hosts running nova-scheduler. Flavors override the policy
defaults with ``gpu_passthrough:*`` extra specs.
""")

OPTS = [
    cfg.StrOpt(
        'default_isolation',
        default='strict',
        choices=extra_specs.policy_spec('isolation').value_descriptions(),
        help="""
IOMMU isolation policy for flavors without ``gpu_passthrough:isolation``.

``strict`` refuses GPUs whose IOMMU group is shared with another endpoint or
whose isolation is unknown: such a guest would fail to start with "group is
not viable". Change it to ``any`` only on clouds whose GPUs are known to be
isolated and that do not run the agent.

Related options:

* ``[gpu_passthrough] untagged_host_policy``
"""),
    cfg.StrOpt(
        'default_numa_affinity',
        default='preferred',
        choices=extra_specs.policy_spec(
            'numa_affinity').value_descriptions(),
        help="""
NUMA affinity policy for flavors without ``gpu_passthrough:numa_affinity``.

Applies to every GPU guest, also guests without ``hw:numa_nodes``. Set it to
``required`` where cross-socket GPU traffic is never acceptable.
"""),
    cfg.StrOpt(
        'default_locality',
        default='any',
        choices=extra_specs.policy_spec('locality').value_descriptions(),
        help="""
PCIe locality requirement for multi-GPU flavors without
``gpu_passthrough:locality``. It is a hard requirement: a host that cannot
give the guest such a GPU set is rejected.
"""),
    cfg.StrOpt(
        'untagged_host_policy',
        default='unknown',
        choices=[
            ('unknown', 'Treat the GPUs of hosts not described by the agent '
                        'as of unknown isolation: rejected for strict '
                        'isolation, accepted otherwise.'),
            ('isolated', 'Trust that every GPU of such hosts is isolated in '
                         'its own IOMMU group.'),
        ],
        help="""
How to treat hosts whose PCI pools carry none of the agent's tags (the agent
does not run there, or its nova config file was not loaded).

Keep ``unknown`` unless you are migrating a cloud whose GPUs you know to be
isolated and the agent is not yet rolled out everywhere.
"""),
    cfg.ListOpt(
        'gpu_vendor_ids',
        default=['10de', '1002'],
        help="""
PCI vendor ids (4 hex digits) whose devices the scheduler plugins treat as
GPUs even when their PCI pools carry none of the agent's tags.

A PCI alias request is a GPU request when it names one of these vendors or
a model that the agent tagged on the host; other PCI requests (NICs,
accelerators the agent does not describe) are left to nova alone. The
default lists NVIDIA (``10de``) and AMD (``1002``). Add a vendor when the
cloud passes through GPUs of another vendor on hosts without the agent.

Related options:

* ``[gpu_passthrough] untagged_host_policy``
"""),
    cfg.StrOpt(
        'error_policy',
        default='fail_closed',
        choices=[
            ('fail_closed', 'Reject the host on an unexpected error.'),
            ('fail_open', 'Pass the host on an unexpected error and let '
                          'nova decide alone.'),
        ],
        help="""
What the filter does with a host when it meets an internal error or a
malformed pool (the error is logged with the host and request; the filter
never raises into nova-scheduler).
"""),
    cfg.FloatOpt(
        'reserved_vcpus_per_free_gpu',
        default=0.0,
        min=0.0,
        help="""
vCPUs that GPUPassthroughFilter keeps beside each free GPU of a host for
the GPU guests to come: a guest without GPUs passes a host with free GPUs
only when it leaves at least this many vCPUs per free GPU (the host's
allocation ratio applies, as for nova's own vCPU accounting). Without it,
plain guests that land on GPU hosts late in a cloud's fill eat the vCPUs
the last free GPUs need and strand them.

Set it to the vCPUs per GPU of the cloud's typical GPU flavor, e.g. 12 for
a 1-GPU flavor with 12 vCPUs. Guests with GPUs are not limited by it (the
``fragmentation_gradient`` scorer steers them).

Possible values:

* 0.0: no reserve (plain guests may take every vCPU of a GPU host).
* A positive number: vCPUs kept per free GPU.

Related options:

* ``[gpu_passthrough] reserved_ram_mb_per_free_gpu``
"""),
    cfg.IntOpt(
        'reserved_ram_mb_per_free_gpu',
        default=0,
        min=0,
        help="""
RAM in MiB that GPUPassthroughFilter keeps beside each free GPU of a host
for the GPU guests to come: a guest without GPUs passes a host with free
GPUs only when it leaves at least this much RAM per free GPU.

Set it to the RAM per GPU of the cloud's typical GPU flavor.

Possible values:

* 0: no reserve.
* A positive number: MiB kept per free GPU.

Related options:

* ``[gpu_passthrough] reserved_vcpus_per_free_gpu``
"""),
    cfg.FloatOpt(
        'reserve_share',
        default=0.25,
        min=0.0,
        max=1.0,
        help="""
Share of a GPU guest's vCPUs and RAM per GPU that GPUPassthroughFilter
keeps beside each free GPU of a host, learned from the GPU guests this
scheduler has seen (total vCPUs and RAM of the last 1,000 over their GPUs):
a guest without GPUs passes a host with free GPUs only when it leaves
that much per free GPU. It adapts the reserve to the cloud's own GPU
flavors; a scheduler that has seen no GPU guest yet keeps none.

Where plain guests outnumber GPU guests and share their hosts, the last
vCPUs of a GPU host go to plain guests and its free GPUs are stranded; a
reserve refuses some plain guests to keep those GPUs usable.

The default, a quarter, refused no more plain guests than nova tuned to
pack on the simulator's CPU-heavy workloads and changed nothing where
vCPUs and RAM are not short (doc/source/admin/benchmarks.rst).

Possible values:

* 0.0: no learned reserve (the behaviour before this option).
* 0.0 to 1.0: that share of the learned vCPUs and RAM per GPU; more sells
  more GPUs and refuses more plain guests.

Related options:

* ``[gpu_passthrough] reserved_vcpus_per_free_gpu`` and
  ``reserved_ram_mb_per_free_gpu``: fixed figures, which win over the
  learned ones where set above 0.
"""),
    cfg.IntOpt(
        'max_candidates_per_host',
        default=0,
        min=0,
        help="""
With PCI in Placement, the most allocation candidates GPUPassthroughFilter
leaves on a host: one per distinct GPU set (Placement returns every
ordering of a set: 2 for a 2-GPU set, 24 for a 4-GPU set), best first.

Nova claims only the first candidate of the chosen host, but
PciPassthroughFilter deep-copies the host's PCI stats once per candidate
it checks; list GPUPassthroughFilter before PciPassthroughFilter in
``[filter_scheduler] enabled_filters`` and set this to 1 to cut that cost
(a candidate built by ``claim_best_set`` counts too, so the host keeps
one). The filter trims only requests whose PCI requests are all GPU
requests and whose guest has no NUMA topology, the cases where no later
nova filter judges candidates differently: the first candidate passes
them exactly when the others would, so no fallback is lost.

Possible values:

* 0: keep every feasible candidate (nova's own behaviour).
* A positive integer: keep at most this many distinct GPU sets.

Related options:

* ``[filter_scheduler] pci_in_placement``
"""),
    cfg.IntOpt(
        'host_cache_size',
        default=10000,
        min=0,
        help="""
How many hosts' GPU facts the scheduler plugins keep between requests.

Nova builds new host states for every request; the plugins keep what they
derived from each host (its GPUs, IOMMU groups, NUMA nodes and switches,
the feasible GPU sets already searched) by the values it was derived from:
the compute node's uuid, its PCI pools and its CPU and RAM usage. A host
whose state did not change since the last request costs a lookup. Set it
to at least the number of GPU compute nodes: every request visits the
hosts in turn, so a smaller cache is evicted before it is used again.
FastPciPassthroughFilter keeps nova's PCI verdicts for as many distinct
host pool contents.
About 27 KiB per 8-GPU host (26 MiB for 1,000, measured with
tracemalloc; doc/source/admin/benchmarks.rst).

Possible values:

* 0: no cache between requests.
* A positive integer: the most hosts kept (least recently used first out).
"""),
    cfg.BoolOpt(
        'claim_best_set',
        default=True,
        help="""
With PCI in Placement, let GPUPassthroughFilter put the host's best GPU set
first even when Placement did not return it.

Placement returns every ordering of every free GPU set of a host (40,320
for 8 GPUs of 8), and a cloud must cap them (``[placement]
max_allocation_candidates``, ``[scheduler] max_placement_results``), so a
host gets one or a few candidates that Placement picked in an order of its
own, rarely the isolated, NUMA-local, switch-local set that keeps the
host's large blocks whole. With this option the filter builds the
allocation request of the best set from one returned candidate of the same
host: the same request groups, each GPU group moved to a free GPU provider
of the same vendor, product, resource class and traits. Placement checks
the claim as for any candidate; if a GPU was taken meanwhile the claim
fails and nova tries the next host.

Possible values:

* True: claim the best set (recommended).
* False: choose only among the candidates Placement returned.

Related options:

* ``[filter_scheduler] pci_in_placement``
* ``[gpu_passthrough] max_candidates_per_host``
"""),
    cfg.FloatOpt(
        'weight_multiplier',
        default=10.0,
        help="""
Multiplier of the GPUPassthroughWeigher's total score, as for nova's own
weighers: positive values apply the scorers' preferences, 0.0 disables the
weigher, negative values invert it. The host aggregate metadata key
``gpu_passthrough_weight_multiplier`` overrides it per aggregate.

The default, 10.0, lets the GPU placement outweigh nova's spreading
weighers: nova normalises every weigher to 0..1 across the hosts, and its
RAM, CPU and disk weighers (multiplier 1.0 each) all prefer the emptiest
host, which is where a 1-GPU guest breaks a free 8-GPU block. At 1.0 they
outvote this weigher and spread the small GPU guests (doc/source/admin/
benchmarks.rst).
"""),
    cfg.ListOpt(
        'scorers',
        default=['fragmentation_gradient', 'locality'],
        help="""
Names of the scorers (entry points of the
``gpu_passthrough_filter.scorers`` namespace) that the GPUPassthroughWeigher
sums. Each is weighted by ``[gpu_passthrough] scorer_multipliers``.

The default places each guest where the expected fragmentation of the
recent request mix grows least (``fragmentation_gradient``: the free GPUs
that would be left without the vCPUs, RAM or GPU count the mix needs) and
prefers GPU sets under one PCIe switch or NUMA node (``locality``). The
other shipped scorers (``best_fit``, ``fragmentation``,
``gpu_host_reserve``, ``resource_balance``) are the rules of earlier
releases; the simulator compares them on the openb trace (see the
benchmarks page of the documentation).

Related options:

* ``[gpu_passthrough] scorer_multipliers``
"""),
    cfg.DictOpt(
        'scorer_multipliers',
        default={'fragmentation_gradient': 4.0, 'locality': 2.0},
        help="""
Weight of each scorer inside the GPUPassthroughWeigher, as
``name:float`` pairs. Scorers not listed weigh 1.0. Each scorer returns a
value between 0.0 and 1.0, so these set their relative importance. With
the defaults, the step from a one-NUMA-node to a one-switch GPU set weighs
about as much as one and a half GPUs of expected fragmentation.

Related options:

* ``[gpu_passthrough] scorers``
"""),
]


def register_opts(conf):
    conf.register_group(GROUP)
    conf.register_opts(OPTS, group=GROUP)


def list_opts():
    return {GROUP: OPTS}
