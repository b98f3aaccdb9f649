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
"""A real in-process Nova with fake NVIDIA GPUs, for functional tests.

:class:`GPUServersTestBase` runs Nova's own functional services (API,
conductor, scheduler, computes on the fake libvirt driver, Placement
fixture) and adds what GPU scheduling tests need: compute hosts whose fake
libvirt exposes GPUs at chosen PCI addresses and NUMA nodes, each host with
its own ``[pci] device_spec`` carrying the agent's tags; GPU flavors;
servers booted through the API; and read-back of where a server landed,
which PCI addresses it holds, what the scheduler's pools look like and what
the scheduler logged.
"""

import contextlib
import io
import logging
import os
import sys
import warnings

import fixtures
from nova import conf
from nova import context
from nova import objects
from nova.scheduler import host_manager
from nova.tests.fixtures import libvirt as fakelibvirt
from nova.tests.functional import fixtures as nova_fixtures
from nova.tests.functional.libvirt import base
from sqlalchemy import exc as sqla_exc

from tests import fake_gpus

CONF = conf.CONF

#: Nova's own default ``[filter_scheduler] enabled_filters``, read from the
#: option so that a nova upgrade that changes it is followed.
NOVA_DEFAULT_FILTERS = tuple(next(
    opt.default for opt in conf.scheduler.filter_scheduler_opts
    if opt.name == 'enabled_filters'))

#: Filters a GPU cloud runs besides nova's defaults.
GPU_FILTERS = ('NUMATopologyFilter', 'PciPassthroughFilter')

#: Nova's filter collection; always kept in ``available_filters``.
NOVA_ALL_FILTERS = 'nova.scheduler.filters.all_filters'

#: The project's filter collection, for ``extra_available_filters``.
PROJECT_ALL_FILTERS = 'gpu_passthrough_filter.scheduler.all_filters'

#: Loggers whose records :meth:`GPUServersTestBase.capture_scheduler_log`
#: keeps by default: nova's scheduler, its filter handler (``nova.filters``
#: logs how many hosts each filter returned) and everything of this project.
SCHEDULER_LOGGERS = ('nova.scheduler', 'nova.filters',
                     'gpu_passthrough_filter')


class GPUServersTestBase(base.ServersTestBase):
    """Nova's libvirt functional base with fake GPU hosts.

    Class attributes configure the scheduler before the services start
    (``setUp`` starts the API, conductor and scheduler, no compute); a test
    then starts its computes with :meth:`start_gpu_compute`. To change the
    scheduler's filters or weighers inside one test, call
    :meth:`configure_scheduler`.

    Attributes:

    * ``GPU_MODELS``: the models that get a ``[pci] alias`` (alias name =
      :attr:`~tests.fake_gpus.GPUModel.alias`).
    * ``PCI_IN_PLACEMENT``: start with ``[pci] report_in_placement`` and
      ``[filter_scheduler] pci_in_placement`` on.
    * ``GPU_FILTERS``: nova filters enabled after nova's defaults
      (default: :data:`GPU_FILTERS`).
    * ``EXTRA_FILTERS``: filter class names enabled after those, e.g.
      ``('GPUPassthroughFilter',)``.
    * ``EXTRA_AVAILABLE_FILTERS``: filter collections (dotted paths) loaded
      besides nova's, e.g. :data:`PROJECT_ALL_FILTERS`.
    * ``WEIGHT_CLASSES``: ``[filter_scheduler] weight_classes``; ``None``
      keeps nova's default (all nova weighers).
    * ``PLACEMENT_OPTIONS``: options of the Placement service,
      ``{(group, name): value}``, e.g. the project's recommended ones
      (:func:`gpu_passthrough_filter.recommended.placement_overrides`).
    """

    ADMIN_API = True
    microversion = 'latest'

    GPU_MODELS = (fake_gpus.H100, fake_gpus.A100, fake_gpus.L40S)
    PCI_IN_PLACEMENT = False
    GPU_FILTERS = GPU_FILTERS
    EXTRA_FILTERS = ()
    EXTRA_AVAILABLE_FILTERS = ()
    WEIGHT_CLASSES = None
    PLACEMENT_OPTIONS = {}

    def setUp(self):
        # The default path only works inside a nova source checkout; the
        # installed package ships the file under the prefix.
        self.flags(api_paste_config=os.path.join(
            sys.prefix, 'etc/nova/api-paste.ini'), group='wsgi')
        # A device_spec entry with an address makes nova ask sysfs whether
        # the address is an SR-IOV PF; fake GPUs are plain PCI functions.
        self.useFixture(fixtures.MockPatch(
            'nova.pci.utils.is_physical_function', return_value=False))
        self.flags(alias=[model.alias_json() for model in self.GPU_MODELS],
                   group='pci')
        if self.PCI_IN_PLACEMENT:
            self.enable_pci_in_placement()
        self._configure_placement_service(self.PLACEMENT_OPTIONS)
        #: Host name -> tuple of the :class:`FakeGPU` it was started with
        #: (IOMMU groups filled in).
        self.gpu_hosts = {}
        self._device_specs = {}
        super().setUp()
        self._tolerate_noload_deprecation()
        self.ctxt = context.get_admin_context()

    def _configure_placement_service(self, options):
        """Give the Placement fixture nova's base starts these options."""
        if not options:
            return
        original = nova_fixtures.PlacementFixture._configure_placement

        def configure(fixture, conf_fixture):
            original(fixture, conf_fixture)
            for (group, name), value in options.items():
                conf_fixture.config(group=group, **{name: value})

        self.useFixture(fixtures.MonkeyPatch(
            'nova.tests.functional.fixtures.PlacementFixture.'
            '_configure_placement', configure))

    @staticmethod
    def _tolerate_noload_deprecation():
        # NOTE: nova's WarningsFixture (set up by nova's own setUp) turns
        # SQLAlchemy deprecation warnings raised from nova code into errors.
        # Nova 34 still calls orm.noload(), deprecated since SQLAlchemy 2.1
        # (our constraints pin 2.1.x) but still working; without this every
        # instance.save() that skips the metadata columns, e.g. setting a
        # server to ERROR after NoValidHost, fails with HTTP 500. The
        # fixture restores the original filter list at cleanup.
        warnings.filterwarnings(
            'ignore', message=r'The noload\(\) option is deprecated',
            category=sqla_exc.SADeprecationWarning)

    def _setup_scheduler_service(self):
        self._set_scheduler_flags(
            self.EXTRA_FILTERS, self.EXTRA_AVAILABLE_FILTERS,
            self.WEIGHT_CLASSES)
        return self.start_service('scheduler')

    def _set_scheduler_flags(self, extra_filters, extra_available_filters,
                             weight_classes):
        enabled = list(NOVA_DEFAULT_FILTERS) + list(self.GPU_FILTERS)
        enabled += [name for name in extra_filters if name not in enabled]
        self.flags(enabled_filters=enabled,
                   available_filters=[NOVA_ALL_FILTERS] + list(
                       extra_available_filters),
                   group='filter_scheduler')
        if weight_classes is not None:
            self.flags(weight_classes=list(weight_classes),
                       group='filter_scheduler')

    def configure_scheduler(self, extra_filters=(),
                            extra_available_filters=(), weight_classes=None):
        """Reconfigure the running scheduler's filters and weighers.

        Nova reads these options when it builds its ``HostManager``; this
        builds a new one, as a scheduler restart would.

        :param extra_filters: filter class names enabled after nova's
            defaults and the class's ``GPU_FILTERS``.
        :param extra_available_filters: filter collections (dotted paths)
            loaded besides nova's ``all_filters``.
        :param weight_classes: the ``weight_classes`` list; ``None`` keeps
            the current value.
        """
        self._set_scheduler_flags(
            extra_filters, extra_available_filters, weight_classes)
        self.scheduler.manager.host_manager = host_manager.HostManager()

    def enable_pci_in_placement(self):
        """Turn on PCI-in-Placement: report and schedule GPUs in Placement.

        Call it before :meth:`start_gpu_compute`: computes read
        ``[pci] report_in_placement`` as they report their inventory.
        """
        self.flags(report_in_placement=True, group='pci')
        self.flags(pci_in_placement=True, group='filter_scheduler')

    # Compute hosts.

    def start_gpu_compute(self, hostname, gpus, numa_nodes=2,
                          cores_per_node=2, threads_per_core=2,
                          memory_mb=16384, tagged=True):
        """Start a compute host whose fake libvirt exposes GPUs.

        The host gets its own ``[pci] device_spec`` (one entry per GPU,
        tagged as the agent would tag it); nova's PCI tracker reads the
        option once, when the compute starts, so the option is restored
        afterwards and other hosts can be started with other GPUs.

        :param hostname: the compute's host name (also its node name).
        :param gpus: the host's :class:`~tests.fake_gpus.FakeGPU`
            values; may be empty for a host without GPUs.
        :param numa_nodes: host NUMA nodes; every GPU's ``numa_node`` must
            be below it.
        :param cores_per_node: CPU cores per NUMA node.
        :param threads_per_core: hardware threads per core. Nova's base
            caps the host at 15 CPUs (it mocks 16 online CPUs).
        :param memory_mb: host memory, split evenly over the NUMA nodes.
        :param tagged: ``False`` writes device_spec without the agent's
            tags, like a host configured by hand.
        :returns: the host name.
        """
        gpus = fake_gpus.assign_iommu_groups(gpus)
        fake_gpus.check_unique_addresses(gpus)
        for gpu in gpus:
            if not 0 <= gpu.numa_node < numa_nodes:
                raise ValueError('GPU %s is on NUMA node %d of a %d-node host'
                                 % (gpu.address, gpu.numa_node, numa_nodes))
        host_info = fakelibvirt.HostInfo(
            cpu_nodes=numa_nodes, cpu_sockets=1, cpu_cores=cores_per_node,
            cpu_threads=threads_per_core, kB_mem=memory_mb * 1024)
        specs = fake_gpus.host_device_specs(
            gpus, tagged=tagged, in_placement=self.PCI_IN_PLACEMENT)
        self._device_specs[hostname] = specs
        self.gpu_hosts[hostname] = tuple(gpus)
        with self._host_device_spec(hostname):
            self.start_compute(hostname=hostname, host_info=host_info,
                               pci_info=self._pci_info(gpus))
        return hostname

    def restart_gpu_compute(self, hostname):
        """Restart a GPU compute with its own device_spec, keeping its VMs.

        :param hostname: a host started with :meth:`start_gpu_compute`.
        :returns: the new compute service.
        """
        with self._host_device_spec(hostname):
            return self.restart_compute_service(hostname)

    @contextlib.contextmanager
    def _host_device_spec(self, hostname):
        previous = CONF.pci.device_spec
        self.flags(device_spec=self._device_specs[hostname], group='pci')
        try:
            yield
        finally:
            self.flags(device_spec=previous, group='pci')

    @staticmethod
    def _pci_info(gpus):
        pci_info = fakelibvirt.HostPCIDevicesInfo(
            num_pci=0, num_pfs=0, num_vfs=0)
        for gpu in gpus:
            bus, slot, function = gpu.bus_slot_function
            pci_info.add_device(
                dev_type='PCI', bus=bus, slot=slot, function=function,
                iommu_group=gpu.iommu_group, numa_node=gpu.numa_node,
                vend_id=gpu.model.vendor_id, vend_name='NVIDIA Corporation',
                prod_id=gpu.model.product_id,
                prod_name=gpu.model.product_name, driver_name='vfio-pci')
        return pci_info

    # Flavors and servers.

    def create_gpu_flavor(self, gpus='h100:1', vcpu=2, memory_mb=1024,
                          disk=1, extra_specs=None, name=None):
        """Create a flavor asking for GPUs through a PCI alias.

        :param gpus: the ``pci_passthrough:alias`` value, e.g. ``'h100:2'``;
            ``None`` for a flavor without GPUs.
        :param vcpu: guest vCPUs.
        :param memory_mb: guest memory in MiB.
        :param disk: root disk in GiB.
        :param extra_specs: more extra specs, e.g.
            ``{'gpu_passthrough:locality': 'switch'}``.
        :param name: flavor name; random when ``None``.
        :returns: the flavor id.
        """
        specs = {}
        if gpus:
            specs['pci_passthrough:alias'] = gpus
        specs.update(extra_specs or {})
        return self._create_flavor(
            name=name, vcpu=vcpu, memory_mb=memory_mb, disk=disk,
            ephemeral=0, extra_spec=specs or None)

    def boot_server(self, flavor_id, expected_state='ACTIVE', host=None):
        """Boot one server through the API and wait for its state.

        :param flavor_id: a flavor id, e.g. from :meth:`create_gpu_flavor`.
        :param expected_state: ``'ACTIVE'``, or ``'ERROR'`` for a request
            that cannot be met (NoValidHost).
        :param host: ask for this host (microversion 2.74 ``host`` field,
            which still runs the filters on it).
        :returns: the server as the API shows it.
        """
        return self._create_server(
            flavor_id=flavor_id, networks='none', host=host,
            expected_state=expected_state)

    def boot_server_expecting_no_valid_host(self, flavor_id):
        """Boot one server that the scheduler must refuse.

        :param flavor_id: a flavor no host can serve.
        :returns: the server (in ``ERROR``), after asserting that its fault
            is nova's NoValidHost.
        """
        server = self.boot_server(flavor_id, expected_state='ERROR')
        self.assertIn('No valid host', server['fault']['message'])
        self.assertIsNone(self.server_host(server))
        return server

    def boot_servers(self, flavor_id, count, min_count=None,
                     expected_state='ACTIVE'):
        """Boot several servers in one multi-create request.

        :param flavor_id: a flavor id.
        :param count: ``max_count`` of the request.
        :param min_count: ``min_count``; ``None`` means ``count``.
        :param expected_state: state every created server must reach.
        :returns: the servers of the request, sorted by name (nova names
            them ``<name>-1``, ``<name>-2``, ...).
        """
        body = self._build_server(flavor_id=flavor_id, networks='none')
        body['min_count'] = count if min_count is None else min_count
        body['max_count'] = count
        body['return_reservation_id'] = True
        reservation = self.api.post_server({'server': body})
        servers = self.api.get_servers(search_opts={
            'reservation_id': reservation['reservation_id']})
        servers = [self._wait_for_state_change(server, expected_state)
                   for server in servers]
        return sorted(servers, key=lambda server: server['name'])

    # Read-back.

    def server_host(self, server):
        """The compute host a server runs on (``None`` if unscheduled).

        :param server: a server dict from the API, or its id.
        """
        server_id = server if isinstance(server, str) else server['id']
        return self.admin_api.get_server(server_id)[
            'OS-EXT-SRV-ATTR:host']

    def server_pci_addresses(self, server):
        """The PCI addresses a server holds, sorted, from nova's database.

        :param server: a server dict from the API, or its id.
        :returns: a sorted list of addresses, e.g. ``['0000:81:00.0']``.
        """
        server_id = server if isinstance(server, str) else server['id']
        devices = objects.PciDeviceList.get_by_instance_uuid(
            self.ctxt, server_id)
        return sorted(device.address for device in devices)

    def assert_server_gpus(self, server, host, addresses):
        """Assert the host and the exact PCI addresses a server got.

        :param server: a server dict from the API, or its id.
        :param host: the expected host name.
        :param addresses: the expected addresses, in any order.
        """
        self.assertEqual(
            (host, sorted(addresses)),
            (self.server_host(server), self.server_pci_addresses(server)))

    def free_gpu_addresses(self, hostname):
        """The addresses of a host's GPUs that no server holds, sorted.

        :param hostname: a host started with :meth:`start_gpu_compute`.
        """
        compute_node = objects.ComputeNode.get_by_nodename(
            self.ctxt, hostname)
        devices = objects.PciDeviceList.get_by_compute_node(
            self.ctxt, compute_node.id)
        return sorted(d.address for d in devices if d.is_available())

    def scheduler_host_state(self, hostname):
        """The scheduler's ``HostState`` of a host, fresh from the database.

        :param hostname: a started compute host.
        """
        states = self.scheduler.manager.host_manager.get_host_states_by_uuids(
            self.ctxt, [self.compute_rp_uuids[hostname]], None)
        return next(iter(states))

    def scheduler_pools(self, hostname):
        """The PCI pools the scheduler sees for a host, one per device.

        Each pool is a copy of the dict in ``HostState.pci_stats.pools``:
        nova's keys (``vendor_id``, ``product_id``, ``dev_type``,
        ``numa_node``, ``address``, ``count``: the scheduler's pools carry no
        device objects), the device_spec tags as string keys and, with
        PCI-in-Placement, ``rp_uuid``.

        :param hostname: a started compute host.
        :returns: a list of dicts sorted by ``address``.
        """
        pools = self.scheduler_host_state(hostname).pci_stats.pools
        return sorted((dict(pool) for pool in pools),
                      key=lambda pool: pool['address'])

    def gpu_provider_uuids(self, hostname):
        """Placement providers of a host's PCI devices, by PCI address.

        Nova names them ``<host>_<ADDRESS>`` with upper-case hex; the keys
        here are lower-case, as in the pools.

        :param hostname: a compute started with PCI-in-Placement.
        :returns: a dict of address -> provider uuid.
        """
        prefix = hostname + '_'
        return {
            rp['name'][len(prefix):].lower(): rp['uuid']
            for rp in self._get_all_rps_in_a_tree(
                self.compute_rp_uuids[hostname])
            if rp['name'].startswith(prefix)
        }

    def capture_scheduler_log(self, loggers=SCHEDULER_LOGGERS,
                              level=logging.DEBUG):
        """Keep the scheduler's log records, DEBUG included, for asserts.

        ``self.stdlog.logger.output`` holds INFO and above of every logger
        (DEBUG only with ``OS_DEBUG=1``); filters explain rejections at
        DEBUG, so tests that assert on reasons capture them here.

        :param loggers: names of the loggers to capture (children
            included).
        :param level: lowest level kept.
        :returns: an object whose ``output`` property is the text captured
            so far, one record per line.
        """
        stream = io.StringIO()
        handler = logging.StreamHandler(stream)
        handler.setFormatter(
            logging.Formatter('%(levelname)s [%(name)s] %(message)s'))
        for name in loggers:
            self.useFixture(fixtures.LogHandler(
                handler, name=name, level=level, nuke_handlers=False))
        return _LogCapture(stream)


class _LogCapture(object):
    """Text of the log records captured by one handler."""

    def __init__(self, stream):
        self._stream = stream

    @property
    def output(self):
        """All captured records, one per line."""
        return self._stream.getvalue()
