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
"""Typed errors of the agent's publishers, with a message format each.

The daemon sorts failures by :attr:`PublishError.transient`: a transient
error (Placement unreachable, timed out, 5xx, a conflict that would not
settle) is retried with exponential backoff; the others need an operator
(bad config, refused credentials) or another service (the compute node is
not registered yet) and are retried at the same pace by ``run`` and end
``publish --once`` with a non-zero exit status.
"""


class PublishError(Exception):
    """A publisher could not publish; nothing half-done was left behind."""

    msg_fmt = 'publishing failed: %(reason)s'
    #: True when retrying soon may succeed without anybody's help.
    transient = False

    def __init__(self, **kwargs):
        self.kwargs = kwargs
        super().__init__(self.msg_fmt % kwargs)


class ConfigError(PublishError):
    msg_fmt = 'invalid agent configuration: %(reason)s'


class DiscoveryError(PublishError):
    msg_fmt = 'cannot read the PCI inventory under %(root)s: %(reason)s'


class AuthError(PublishError):
    msg_fmt = ('Placement refused the agent\'s credentials (HTTP %(status)s '
               'on %(method)s %(url)s): check the [placement] auth options')


class ProviderNotFound(PublishError):
    msg_fmt = ('no resource provider named %(host)r in Placement: is '
               'nova-compute running on this host and is [agent] host its '
               'hypervisor hostname?')


class PlacementError(PublishError):
    """An answer from Placement the agent does not expect (4xx)."""

    msg_fmt = ('Placement answered HTTP %(status)s to %(method)s %(url)s: '
               '%(detail)s')


class MalformedAnswer(PublishError):
    """A success status whose body is not what Placement sends."""

    msg_fmt = ('Placement answered %(method)s %(url)s with HTTP %(status)s '
               'but the body is not the expected JSON (a proxy\'s page?): '
               '%(reason)s')
    transient = True


class PlacementUnavailable(PublishError):
    msg_fmt = 'Placement is unavailable (%(method)s %(url)s): %(reason)s'
    transient = True


class CordonFileError(PublishError):
    """The cordon file cannot be read: nothing is published.

    Publishing without it would put back into service the GPUs the
    operator took out.
    """

    msg_fmt = 'nothing published: %(reason)s'


class ConcurrentUpdate(PublishError):
    msg_fmt = ('resource provider %(uuid)s kept changing '
               'under the agent (%(attempts)d generation conflicts in a '
               'row); will retry')
    transient = True


class OutputError(PublishError):
    msg_fmt = 'cannot write %(path)s: %(reason)s'
