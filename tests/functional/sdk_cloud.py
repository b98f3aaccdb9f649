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
"""An openstacksdk Connection to the in-process Nova and Placement.

Nova's functional base serves the compute API and Placement through
wsgi-intercept (requests to made-up host names are handed to the WSGI
applications in the test process) with keystone stubbed out. This module
builds a real :class:`openstack.connection.Connection` on top of that, so
that the cloud-level scenarios of :mod:`tests.scenario` talk to the
in-process cloud exactly as they talk to devstack: same SDK, same HTTP.

How the stubs are met:

* Nova's API takes the request context from the ``X-Auth-User``,
  ``X-Auth-Project-Id`` and ``X-Roles`` headers (``OSAPIFixture.
  _stub_keystone``); Placement's ``noauth2`` middleware wants
  ``X-Auth-Token: admin``. A keystoneauth session with no authentication
  and these headers on every request is all the cloud needs.
* There is no service catalog: each service gets an endpoint override.
* Nova's base test case (``nova.test.TestCase``) installs nova's
  ``OpenStackSDKFixture`` for every test. It mocks
  ``openstack.proxy.Proxy.get_endpoint`` and makes every SDK
  ``Connection`` hand out a bare keystoneauth adapter instead of the
  Placement proxy (nova's own code never needs more, and it must never do
  service discovery against a catalog that does not exist). The mocked
  ``get_endpoint`` is harmless here: with an endpoint override every
  request URL comes from the override, and the SDK calls the mock only
  as it builds a proxy, and uses the answer only to validate the proxy
  when asked to (``strict_proxies``, off by default). The Placement
  stub is not: the scenarios need ``conn.placement.resource_providers()``
  and friends. :class:`_Connection` therefore declares its own Placement
  service descriptor that builds the real SDK Placement proxy straight
  from the endpoint override, exactly as openstacksdk does when it is
  given an endpoint override and an API version. Only connections built
  here get it; nova's own SDK use in the same test keeps the stub.
"""

from keystoneauth1 import noauth
from keystoneauth1 import session as ks_session
from openstack import connection
from openstack.placement import placement_service
from openstack.placement.v1 import _proxy as placement_proxy

#: The user nova's stubbed keystone makes an admin (``is_admin`` is
#: ``user_id == 'admin'``).
ADMIN_USER = 'admin'

#: Roles of the scenario user: nova's policies grant admin actions
#: (flavors, extra specs, hosts) to the ``admin`` role.
ADMIN_ROLES = ('reader', 'member', 'admin')


class _PlacementService(placement_service.PlacementService):
    """The Placement descriptor, immune to nova's SDK fixture.

    ``OpenStackSDKFixture`` replaces ``ServiceDescription._make_proxy``;
    this subclass defines its own, so the connection gets openstacksdk's
    real Placement proxy. It needs ``placement_endpoint_override`` in the
    connection's config (see :func:`connect`).
    """

    def _make_proxy(self, instance):
        return instance.config.get_session_client(
            self.service_type, constructor=placement_proxy.Proxy)


class _Connection(connection.Connection):
    """A Connection whose Placement proxy is the real SDK one."""

    placement = _PlacementService(service_type='placement')


def admin_headers(project_id, placement_token):
    """Headers that authenticate as an admin to the in-process cloud.

    :param project_id: the project nova's API fixture serves (its
        ``project_id``).
    :param placement_token: the token the Placement fixture accepts (its
        ``token``, ``admin``).
    :returns: a dict of HTTP headers.
    """
    return {
        'X-Auth-User': ADMIN_USER,
        'X-Auth-Project-Id': project_id,
        'X-Roles': ','.join(ADMIN_ROLES),
        'X-Auth-Token': placement_token,
    }


def connect(api_fixture, placement_fixture):
    """An admin openstacksdk Connection to the in-process cloud.

    :param api_fixture: nova's ``OSAPIFixture`` of the running test (its
        ``base_url`` ends with the API version, e.g. ``.../v2.1``).
    :param placement_fixture: nova's ``PlacementFixture`` of the running
        test (``endpoint``, ``token``).
    :returns: an :class:`openstack.connection.Connection` whose ``compute``
        and ``placement`` proxies reach the in-process services.
    """
    session = ks_session.Session(
        auth=noauth.NoAuth(),
        additional_headers=admin_headers(
            api_fixture.project_id, placement_fixture.token))
    return _Connection(
        session=session,
        compute_endpoint_override=api_fixture.base_url,
        compute_api_version='2',
        placement_endpoint_override=placement_fixture.endpoint,
        placement_api_version='1')
