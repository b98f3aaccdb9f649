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
"""Test fixtures of the agent: a real in-process Placement, configs, hosts.

:class:`InProcessPlacement` is placement's own ``PlacementFixture`` (its
real WSGI application and an SQLite database) reached by openstacksdk
through wsgi-intercept, behind a thin WSGI wrapper that records every
request (so a test can count write calls) and runs hooks before a request
(so a test can change the provider concurrently, or answer 503).
"""

import json
import os

import fixtures
from oslo_utils import uuidutils
from placement import deploy
from placement.tests.functional.fixtures import placement as pl_fixture
from requests import adapters
import webob
from wsgi_intercept import interceptor

from gpu_passthrough_filter.agent import daemon
from gpu_passthrough_filter.inventory import sysfs
from tests.unit.inventory import test_topologies
from tests.unit.inventory import tree as sysfs_tree

MICROVERSION = 'placement 1.23'


class InProcessPlacement(fixtures.Fixture):
    """Placement in this process, with request log and hooks.

    Attributes: ``endpoint`` (for ``[placement] endpoint``), ``requests``
    (``(method, path)`` of every request the agent sent), ``hooks``
    (callables ``(method, path) -> None, an HTTP status or (status, body,
    content type)`` run before each request; a status answers the request
    with it, unprocessed).
    """

    def _setUp(self):
        # NOTE: as nova's own PlacementFixture: wsgi-intercept cannot take
        # keystoneauth's TCP keep-alive socket options.
        self.useFixture(fixtures.MonkeyPatch(
            'keystoneauth1.session.TCPKeepAliveAdapter.init_poolmanager',
            adapters.HTTPAdapter.init_poolmanager))
        placement = self.useFixture(
            pl_fixture.PlacementFixture(use_intercept=False))
        self.app = deploy.loadapp(placement.conf_fixture.conf)
        self.requests = []
        self.hooks = []
        self.endpoint = 'http://%s/placement' % uuidutils.generate_uuid()
        intercept = interceptor.RequestsInterceptor(lambda: self._serve,
                                                    url=self.endpoint)
        intercept.install_intercept()
        self.addCleanup(intercept.uninstall_intercept)

    def _serve(self, environ, start_response):
        method, path = environ['REQUEST_METHOD'], environ['PATH_INFO']
        self.requests.append((method, path))
        for hook in list(self.hooks):
            status = hook(method, path)
            if isinstance(status, tuple):  # (status, body, content type)
                status, body, content_type = status
                start_response('%d Injected' % status,
                               [('Content-Type', content_type)])
                return [body]
            if status:
                start_response('%d Injected' % status,
                               [('Content-Type', 'application/json')])
                return [json.dumps({'errors': [{
                    'status': status, 'detail': 'injected by the test'}]}
                ).encode()]
        return self.app(environ, start_response)

    def writes(self):
        """The non-GET requests the agent sent."""
        return [request for request in self.requests if request[0] != 'GET']

    def call(self, method, path, body=None):
        """Call Placement directly (not through the log), as another client.

        :returns: ``(status, parsed JSON body or None)``.
        """
        request = webob.Request.blank(path, method=method)
        request.headers['X-Auth-Token'] = 'admin'
        request.headers['OpenStack-API-Version'] = MICROVERSION
        if body is not None:
            request.content_type = 'application/json'
            request.body = json.dumps(body).encode()
        response = request.get_response(self.app)
        payload = response.json_body if response.body else None
        return response.status_code, payload

    def create_provider(self, name):
        """A root provider named ``name``, as nova-compute would create it.

        :returns: its UUID.
        """
        status, body = self.call('POST', '/resource_providers',
                                 {'name': name})
        assert status == 200, (status, body)
        return body['uuid']

    def traits(self, uuid):
        """``(set of traits, generation)`` of provider ``uuid``."""
        status, body = self.call('GET', '/resource_providers/%s/traits'
                                 % uuid)
        assert status == 200, (status, body)
        return set(body['traits']), body['resource_provider_generation']

    def set_traits(self, uuid, names):
        """Replace the provider's traits as another client would."""
        for name in names:
            if name.startswith('CUSTOM_'):
                self.call('PUT', '/traits/%s' % name)
        _, generation = self.traits(uuid)
        status, body = self.call(
            'PUT', '/resource_providers/%s/traits' % uuid,
            {'traits': sorted(names),
             'resource_provider_generation': generation})
        assert status == 200, (status, body)


def write_config(directory, name='agent.conf', **groups):
    """Write an agent config file; ``groups``: group -> {option: value}.

    :returns: its path.
    """
    path = os.path.join(directory, name)
    with open(path, 'w') as stream:
        for group, options in groups.items():
            stream.write('[%s]\n' % group)
            for key, value in options.items():
                if isinstance(value, (list, tuple)):
                    value = ','.join(value)
                stream.write('%s = %s\n' % (key, value))
    return path


def machine_tree(test, machine):
    """Write a named machine of test_topologies; return its root."""
    root = test.useFixture(fixtures.TempDir()).path
    machine(sysfs_tree.Tree(root))
    return root


def machine_inventory(test, machine, hostname='gpu-host'):
    """Read a named machine back as a HostInventory."""
    return sysfs.read_inventory(machine_tree(test, machine),
                                hostname=hostname)


def agent_conf(test, service=None, host='gpu-host', publishers=('placement',),
               sysfs_root=None, **groups):
    """A ConfigOpts loaded from a real file, as the agent loads it.

    :param service: an :class:`InProcessPlacement` for ``admin_token``
        auth against it, or None.
    """
    directory = test.useFixture(fixtures.TempDir()).path
    agent = {'host': host, 'publishers': list(publishers),
             'backoff_initial': 0.01, 'backoff_max': 0.05,
             'state_dir': os.path.join(directory, 'state')}
    if sysfs_root:
        agent['sysfs_root'] = sysfs_root
    agent.update(groups.pop('agent', {}))
    output = os.path.join(directory, 'nova-pci.conf')
    options = {'agent': agent, 'nova_pci': {'output_file': output}}
    options['nova_pci'].update(groups.pop('nova_pci', {}))
    if service is not None:
        options['placement'] = {'auth_type': 'admin_token',
                                'endpoint': service.endpoint,
                                'token': 'admin'}
    options['placement'] = dict(options.get('placement', {}),
                                **groups.pop('placement', {}))
    options.update(groups)
    path = write_config(directory, **options)
    return daemon.build_conf([path])


MACHINES = test_topologies
