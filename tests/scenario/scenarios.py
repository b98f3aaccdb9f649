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
"""Cloud-level GPU scenarios, written once, run against any cloud.

:class:`GPUScenarios` is a mixin of test methods that talk to a cloud only
through openstacksdk (``self.conn``) and a few hooks its runner provides.
Two runners use it:

* :mod:`tests.functional.test_scenarios`: Nova's in-process functional
  services (API, conductor, scheduler, fake-libvirt computes with fake
  GPUs, Placement), reached through wsgi-intercept; the runner chooses the
  topology, so it knows exactly what every host can give.
* :mod:`tests.scenario.test_devstack`: a deployed cloud named by
  ``OS_CLOUD`` (devstack's ``devstack-admin``), in Zuul.

The hooks (attributes and methods of the runner):

``conn``
    An admin :class:`openstack.connection.Connection`.
``gpu_alias``
    Name of a ``[pci] alias`` the cloud's nova-api knows, for
    ``pci_passthrough:alias=<gpu_alias>:<count>``.
``gpu_room()``
    ``{hypervisor hostname: n}``: how many one-GPU servers of
    ``gpu_alias`` each compute host can take under the cloud's default
    policy (strict isolation). Hosts that can take none may be left out.
``impossible_gpu_request()``
    A :class:`GPURequest` that no host of the cloud can meet, for the
    NoValidHost scenario. Runners choose one that nova's own PCI filter
    would place, so that the project's policy is what refuses it.
``expected_host_traits()``
    ``{hypervisor hostname: set of trait names}``: the agent-owned traits
    each host's compute node provider must carry. A runner whose agent
    does not run as a service (in-process) runs it here, first.
``server_image()``
    The id of an image to boot servers from.
``PCI_IN_PLACEMENT``
    True when the cloud tracks PCI devices in Placement; the scenarios
    then also count the GPUs each server holds (in its allocations).

Everything created is deleted again at cleanup, so the suite can run
against a long-lived cloud; servers are deleted before their flavors.
"""

import collections
import dataclasses
import time
import uuid

from openstack import exceptions as sdk_exceptions

from gpu_passthrough_filter.policy import extra_specs as policy_specs
from gpu_passthrough_filter import traits

#: Nova validates flavor extra specs from this compute API microversion on.
#: openstacksdk's Flavor resource negotiates at most 2.61 for its extra
#: spec calls, where nova accepts any value unchecked, so the scenarios
#: send extra specs themselves at this microversion (a raw request through
#: the SDK's compute proxy).
EXTRA_SPEC_VALIDATION_MICROVERSION = '2.86'

#: The fault message nova gives a server no host could take.
NO_VALID_HOST = 'No valid host'

#: At most this many servers are booted by one scenario, so that the suite
#: stays quick on a cloud with many GPUs.
MAX_SERVERS_PER_SCENARIO = 4

#: Resource-class prefixes of PCI devices tracked in Placement: nova's
#: default for a device_spec entry without ``resource_class`` and the
#: agent's per-model class.
PCI_RESOURCE_CLASS_PREFIXES = ('CUSTOM_PCI_', traits.RESOURCE_CLASS_PREFIX)


@dataclasses.dataclass(frozen=True)
class GPURequest:
    """What a flavor asks for: GPUs of the cloud's alias, and policies.

    :param count: GPUs per server.
    :param extra_specs: ``gpu_passthrough:*`` extra specs.
    """

    count: int
    extra_specs: dict = dataclasses.field(default_factory=dict)


class GPUScenarios(object):
    """Cloud-level scenarios; mix into a ``testtools.TestCase`` runner.

    See the module documentation for the hooks the runner provides.
    """

    #: Seconds between two polls of a server's status.
    SERVER_POLL_INTERVAL = 2
    #: Seconds a server may take to become ACTIVE or ERROR.
    SERVER_TIMEOUT = 300
    #: Seconds the agent may take to publish its traits (it runs
    #: periodically as a service on a deployed cloud).
    TRAITS_TIMEOUT = 120
    #: See the module documentation.
    PCI_IN_PLACEMENT = False

    # -- scenarios ---------------------------------------------------------

    def test_gpu_flavor_extra_specs(self):
        """A GPU flavor with every policy value; bad values refused (400).

        Every value of every ``gpu_passthrough:*`` spec is accepted by
        nova-api; a value outside the list, and a name the project does not
        define, are refused with HTTP 400 whose message names the allowed
        values. The GPU flavor keeps exactly the specs it was given.
        """
        flavor = self.make_flavor()
        for spec in policy_specs.POLICY_SPECS:
            for value in spec.values:
                self.assertEqual(
                    {spec.name: value},
                    self.put_extra_specs(flavor, {spec.name: value}))
            error = self.assertRaises(
                sdk_exceptions.BadRequestException, self.put_extra_specs,
                flavor, {spec.name: 'sideways'})
            self.assertEqual(400, error.status_code)
            self.assertIn("'sideways' is not one of: %s"
                          % ', '.join(spec.values), _error_text(error))

        error = self.assertRaises(
            sdk_exceptions.BadRequestException, self.put_extra_specs,
            flavor, {policy_specs.PREFIX + ':sideways': 'any'})
        self.assertIn(policy_specs.PREFIX + ':sideways', _error_text(error))

        policies = {spec.name: spec.values[0]
                    for spec in policy_specs.POLICY_SPECS}
        gpu_flavor = self.make_gpu_flavor(GPURequest(2, policies))
        wanted = dict(policies)
        wanted[policy_specs.ALIAS_SPEC] = '%s:2' % self.gpu_alias
        self.assertEqual(
            wanted,
            self.conn.compute.fetch_flavor_extra_specs(gpu_flavor).extra_specs)

    def test_servers_land_per_policy(self):
        """One-GPU servers go only where the default policy allows them.

        As many servers as the cloud has room for (up to
        :data:`MAX_SERVERS_PER_SCENARIO`) each become ACTIVE on a host with
        room left, holding one GPU; when the cloud is then full under the
        policy, one more server fails with NoValidHost even where GPUs are
        still free but not usable under the policy.
        """
        room = {host: n for host, n in self.gpu_room().items() if n > 0}
        flavor = self.make_gpu_flavor(GPURequest(1))
        to_boot = min(sum(room.values()), MAX_SERVERS_PER_SCENARIO)
        placed = collections.Counter()
        for _ in range(to_boot):
            server = self.boot_and_wait(flavor, 'ACTIVE')
            host = server.compute_host
            placed[host] += 1
            self.assertLessEqual(
                placed[host], room.get(host, 0),
                'server %s landed on %s; hosts with room: %s'
                % (server.id, host, room))
            self.assert_server_gpu_count(server, 1)
        if to_boot == sum(room.values()):
            self.assert_no_valid_host(self.boot_and_wait(flavor, 'ERROR'))

    def test_impossible_policy_gives_no_valid_host(self):
        """A request no host can meet: ERROR with a NoValidHost fault."""
        flavor = self.make_gpu_flavor(self.impossible_gpu_request())
        self.assert_no_valid_host(self.boot_and_wait(flavor, 'ERROR'))

    def test_agent_traits_on_compute_node_provider(self):
        """The agent's traits sit on each host's root provider.

        Exactly the expected agent-owned traits (waiting up to
        :attr:`TRAITS_TIMEOUT` for an agent that runs as a service), and
        nova's own ``COMPUTE_NODE`` trait still there beside them.
        """
        expected = self.expected_host_traits()
        self.assertTrue(expected, 'the runner names no host to check')
        for host, wanted in sorted(expected.items()):
            names = self.wait_for_agent_traits(host, wanted)
            self.assertEqual(
                (host, sorted(wanted)),
                (host, sorted(t for t in names if traits.is_owned(t))))
            self.assertIn('COMPUTE_NODE', names)

    # -- helpers for scenarios ---------------------------------------------

    def make_flavor(self, vcpus=1, ram=512, disk=1):
        """A flavor without extra specs, deleted at cleanup.

        :returns: the :class:`openstack.compute.v2.flavor.Flavor`.
        """
        flavor = self.conn.compute.create_flavor(
            name='gpu-pt-scenario-%s' % uuid.uuid4().hex[:12],
            vcpus=vcpus, ram=ram, disk=disk)
        self.addCleanup(self.conn.compute.delete_flavor, flavor,
                        ignore_missing=True)
        return flavor

    def make_gpu_flavor(self, request):
        """A flavor asking for ``request.count`` GPUs of ``gpu_alias``.

        :param request: a :class:`GPURequest`.
        :returns: the flavor.
        """
        flavor = self.make_flavor()
        specs = {policy_specs.ALIAS_SPEC: '%s:%d' % (self.gpu_alias,
                                                     request.count)}
        specs.update(request.extra_specs)
        self.put_extra_specs(flavor, specs)
        return flavor

    def put_extra_specs(self, flavor, specs):
        """Add extra specs to a flavor through nova's validating API.

        :param flavor: a flavor (or its id).
        :param specs: a dict of extra specs.
        :returns: the extra specs nova echoes back.
        :raises openstack.exceptions.HttpException: nova refused them.
        """
        flavor_id = getattr(flavor, 'id', flavor)
        response = self.conn.compute.post(
            '/flavors/%s/os-extra_specs' % flavor_id,
            json={'extra_specs': specs},
            microversion=EXTRA_SPEC_VALIDATION_MICROVERSION)
        sdk_exceptions.raise_from_response(response)
        return response.json()['extra_specs']

    def boot_and_wait(self, flavor, status):
        """Boot one server without network and wait for ``status``.

        :param flavor: the flavor.
        :param status: ``'ACTIVE'`` or ``'ERROR'``; reaching the other one
            fails at once.
        :returns: the :class:`openstack.compute.v2.server.Server`, fetched
            again (admin view: ``compute_host``, ``fault``).
        """
        server = self.conn.compute.create_server(
            name='gpu-pt-scenario-%s' % uuid.uuid4().hex[:12],
            flavor_id=flavor.id, image_id=self.server_image(),
            networks='none')
        self.addCleanup(self._delete_scenario_server, server)
        return self.await_server(server, status)

    def await_server(self, server, status):
        """Wait until ``server`` has ``status``; fail on the other outcome.

        :param server: a server.
        :param status: ``'ACTIVE'`` or ``'ERROR'``.
        :returns: the server, fetched again.
        """
        other = 'ACTIVE' if status == 'ERROR' else 'ERROR'
        try:
            self.conn.compute.wait_for_server(
                server, status=status, failures=[other],
                interval=self.SERVER_POLL_INTERVAL,
                wait=self.SERVER_TIMEOUT)
        except sdk_exceptions.ResourceFailure:
            server = self.conn.compute.get_server(server)
            self.fail('server %s became %s, not %s; host %s, fault %s'
                      % (server.id, server.status, status,
                         server.compute_host, server.fault))
        return self.conn.compute.get_server(server)

    def _delete_scenario_server(self, server):
        self.conn.compute.delete_server(server, ignore_missing=True)
        self.conn.compute.wait_for_delete(
            server, interval=self.SERVER_POLL_INTERVAL,
            wait=self.SERVER_TIMEOUT)

    def assert_no_valid_host(self, server):
        """The server is in ERROR, unscheduled, with nova's NoValidHost.

        :param server: a server fetched after it reached ERROR.
        """
        self.assertEqual('ERROR', server.status)
        self.assertIn(NO_VALID_HOST, (server.fault or {}).get('message', ''))
        self.assertIsNone(server.compute_host)

    def assert_server_gpu_count(self, server, count):
        """The server holds ``count`` GPUs, as far as the cloud shows it.

        With PCI in Placement the server's allocation holds ``count``
        devices, all on PCI device providers of the server's host. Without
        it, nova keeps device claims to itself and the cloud cannot
        say from outside which GPUs a server holds: nothing to check.

        :param server: an ACTIVE server (admin view).
        :param count: expected number of GPUs.
        """
        if not self.PCI_IN_PLACEMENT:
            return
        self.assertEqual(count, len(self.server_gpu_providers(server)))

    def server_gpu_providers(self, server):
        """Names of the PCI device providers a server is allocated from.

        Nova names them ``<hypervisor hostname>_<PCI ADDRESS>``; one
        provider per device, one unit each.

        :param server: a server (admin view).
        :returns: a sorted list of provider names, one per device unit.
        """
        allocation = self.conn.placement.get_allocation(server.id)
        names = []
        for rp_uuid, usage in allocation.allocations.items():
            units = sum(amount for rc, amount in usage['resources'].items()
                        if rc.startswith(PCI_RESOURCE_CLASS_PREFIXES))
            if units:
                provider = self.conn.placement.get_resource_provider(rp_uuid)
                self.assertTrue(
                    provider.name.startswith(server.hypervisor_hostname),
                    '%s allocated from %s' % (server.id, provider.name))
                names.extend([provider.name] * units)
        return sorted(names)

    def wait_for_agent_traits(self, host, wanted):
        """Poll the traits of ``host`` until the agent's are ``wanted``.

        Gives up after :attr:`TRAITS_TIMEOUT` seconds.

        :param host: a hypervisor hostname.
        :param wanted: the agent-owned traits expected.
        :returns: every trait of the host's root provider, last read.
        """
        deadline = time.monotonic() + self.TRAITS_TIMEOUT
        while True:
            names = self.provider_traits(host)
            owned = {name for name in names if traits.is_owned(name)}
            if owned == set(wanted) or time.monotonic() >= deadline:
                return names
            time.sleep(self.SERVER_POLL_INTERVAL)

    def provider_traits(self, host):
        """Traits of the root resource provider named ``host``.

        :param host: a hypervisor hostname.
        :returns: a set of trait names.
        """
        providers = list(self.conn.placement.resource_providers(name=host))
        self.assertEqual(1, len(providers),
                         'resource providers named %s: %s' % (
                             host, providers))
        self.assertEqual(providers[0].id, providers[0].root_provider_id)
        return set(self.conn.placement.get_resource_provider_trait(
            providers[0]).traits)


def _error_text(error):
    """The whole text of an SDK HTTP error: message and response body."""
    body = error.response.text if error.response is not None else ''
    return '%s %s' % (error, body)
