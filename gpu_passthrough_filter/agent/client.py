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
"""The agent's connection to Placement: openstacksdk, errors typed.

The connection comes from the ``[placement]`` keystoneauth options of the
agent's config (any auth plugin: ``password``, ``v3applicationcredential``,
``admin_token`` for tests) or from a ``clouds.yaml`` cloud named by
``[placement] cloud``. :class:`PlacementClient` sends raw REST calls through
the connection's placement proxy, with an explicit microversion, and turns
every failure into a :mod:`~gpu_passthrough_filter.agent.exception` error.

NOTE: the agent never uses openstacksdk's resource-provider trait helpers:
their retry-on-conflict resends the stale generation. It reads, decides and
writes itself (see :mod:`gpu_passthrough_filter.agent.placement`).
"""

import contextlib
import re
import signal
import threading
import time

from keystoneauth1 import exceptions as ks_exc
from keystoneauth1 import loading as ks_loading
import openstack
from openstack import exceptions as sdk_exc
from oslo_log import log as logging

from gpu_passthrough_filter.agent import exception

LOG = logging.getLogger(__name__)

#: Seconds a request may take when ``[placement] timeout`` is unset: the
#: daemon must never hang on a Placement that accepts and then says nothing.
DEFAULT_TIMEOUT = 30.0

#: When the current publishing cycle must end (``time.monotonic()``), or
#: None outside :func:`cycle_deadline`.
_CYCLE_ENDS = threading.local()


class _OutOfTime(Exception):
    """Raised by the alarm inside a request that ran out of time."""


@contextlib.contextmanager
def cycle_deadline(seconds):
    """Bound every request sent inside by the cycle's remaining time.

    :param seconds: the cycle's budget (``[agent] cycle_timeout``).
    """
    _CYCLE_ENDS.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _CYCLE_ENDS.at = None


def _time_left(timeout):
    """Seconds this request may take: its timeout, within the cycle's."""
    ends = getattr(_CYCLE_ENDS, 'at', None)
    if ends is None:
        return timeout
    return min(timeout, ends - time.monotonic())


@contextlib.contextmanager
def _alarm(seconds):
    """Interrupt the block after ``seconds`` (main thread only).

    The session's timeout bounds each read; a server that sends one byte
    a second never trips it. The alarm bounds the whole exchange.
    Elsewhere than in the main thread (no signals) only the per-read
    timeout applies.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def _expired(signum, frame):
        raise _OutOfTime()

    previous = signal.signal(signal.SIGALRM, _expired)
    signal.setitimer(signal.ITIMER_REAL, max(seconds, 0.001))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def _short(exc):
    """The cause of a connection error, said once.

    keystoneauth nests urllib3's message, which names the URL and the
    connection pool again; the ``[Errno N] ...`` part is the cause.
    """
    text = str(exc)
    cause = re.search(r'\[Errno -?\d+\] [^\'")]+', text)
    return cause.group(0).strip() if cause else text


#: Microversion of every call: traits need 1.6; 1.23 adds error codes such
#: as ``placement.concurrent_update`` to 409 answers.
MICROVERSION = '1.23'

#: Microversion of an inventory write that may reserve all of it
#: (``reserved == total`` is refused below 1.26).
RESERVE_ALL_MICROVERSION = '1.26'

#: Error code of a generation conflict (Placement microversion >= 1.23).
CONCURRENT_UPDATE = 'placement.concurrent_update'


def connect(conf):
    """Build an openstacksdk connection to Placement from the agent config.

    :param conf: the agent's ``ConfigOpts``.
    :returns: an :class:`openstack.connection.Connection`.
    :raises exception.ConfigError: the options do not make a connection.
    """
    group = conf.placement
    try:
        if group.cloud:
            return openstack.connect(cloud=group.cloud)
        auth = ks_loading.load_auth_from_conf_options(conf, 'placement')
        if auth is None:
            raise exception.ConfigError(
                reason='[placement] auth_type is not set (or set '
                       '[placement] cloud)')
        session = ks_loading.load_session_from_conf_options(
            conf, 'placement', auth=auth)
        if session.timeout is None:
            session.timeout = DEFAULT_TIMEOUT
        return openstack.connection.Connection(
            session=session, oslo_conf=conf, service_types=['placement'])
    except (ks_exc.MissingRequiredOptions, ks_exc.NoMatchingPlugin,
            ks_exc.OptionError, sdk_exc.ConfigException) as exc:
        raise exception.ConfigError(reason='[placement]: %s' % exc)


class PlacementClient:
    """Raw Placement REST calls with typed errors.

    :param connection: an :class:`openstack.connection.Connection`.
    """

    def __init__(self, connection):
        self.connection = connection

    def request(self, method, url, body=None, ok=(200,),
                microversion=MICROVERSION):
        """Send one request; return the response if its status is in ``ok``.

        :param method: HTTP method.
        :param url: path below the Placement endpoint.
        :param body: JSON body, or None.
        :param ok: statuses returned to the caller instead of raised.
        :param microversion: of this call.
        :raises exception.PlacementUnavailable: no answer, a timeout or 5xx.
        :raises exception.AuthError: 401 or 403.
        :raises exception.PlacementError: any other unexpected status.
        """
        kwargs = {'microversion': microversion}
        if body is not None:
            kwargs['json'] = body
        timeout = getattr(self.connection.session, 'timeout', None)
        allowed = _time_left(timeout or DEFAULT_TIMEOUT)
        if allowed <= 0:
            raise exception.PlacementUnavailable(
                method=method, url=url,
                reason='the publishing cycle ran out of time')
        try:
            with _alarm(allowed):
                response = self.connection.placement.request(
                    url, method, **kwargs)
        except _OutOfTime:
            raise exception.PlacementUnavailable(
                method=method, url=url,
                reason='no complete answer within %.1f s' % allowed)
        except (ks_exc.ConnectionError, ks_exc.RequestTimeout,
                ks_exc.GatewayTimeout, ks_exc.DiscoveryFailure) as exc:
            raise exception.PlacementUnavailable(method=method, url=url,
                                                 reason=_short(exc))
        except (ks_exc.Unauthorized, ks_exc.Forbidden) as exc:
            raise exception.AuthError(status=exc.http_status, method=method,
                                      url=url)
        except ks_exc.EndpointNotFound as exc:
            raise exception.ConfigError(reason='no Placement endpoint: %s'
                                        % exc)
        return self._check(response, method, url, ok)

    @staticmethod
    def _check(response, method, url, ok):
        status = response.status_code
        if status in ok:
            return response
        if status in (401, 403):
            raise exception.AuthError(status=status, method=method, url=url)
        if status >= 500:
            raise exception.PlacementUnavailable(
                method=method, url=url, reason='HTTP %d' % status)
        raise exception.PlacementError(status=status, method=method,
                                       url=url, detail=error_detail(response))


def json_fields(response, *names):
    """The named fields of a JSON answer, or :class:`MalformedAnswer`.

    :param response: a successful response.
    :param names: top-level keys that must be present.
    :returns: a tuple of their values.
    :raises exception.MalformedAnswer: the body is not a JSON object with
        those keys (an HTML page from a proxy, a truncated answer).
    """
    request = getattr(response, 'request', None)
    where = dict(method=getattr(request, 'method', '?'),
                 url=getattr(request, 'url', '?'),
                 status=getattr(response, 'status_code', '?'))
    try:
        body = response.json()
    except ValueError as exc:
        raise exception.MalformedAnswer(reason='not JSON (%s): %r' % (
            exc, (getattr(response, 'text', '') or '')[:80]), **where)
    if not isinstance(body, dict):
        raise exception.MalformedAnswer(reason='not an object', **where)
    missing = [name for name in names if name not in body]
    if missing:
        raise exception.MalformedAnswer(
            reason='no %s' % ', '.join(missing), **where)
    return tuple(body[name] for name in names)


def error_detail(response):
    """The first error's detail (or the body) of a Placement answer."""
    try:
        errors = response.json().get('errors') or [{}]
        return (errors[0].get('detail') or response.text).strip()
    except (ValueError, AttributeError):
        return response.text.strip()


def error_code(response):
    """The first error's ``code`` of a Placement answer, or None."""
    try:
        errors = response.json().get('errors') or [{}]
        return errors[0].get('code')
    except (ValueError, AttributeError):
        return None
