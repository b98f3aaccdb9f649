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
"""The publisher contract: one abstract method.

Publishers are stevedore plugins of the ``gpu_passthrough_filter.
publishers`` namespace, built with the agent's ``ConfigOpts`` and called
once per discovery with the :class:`~gpu_passthrough_filter.inventory.
model.HostInventory`. They are idempotent: publishing an unchanged
inventory again changes nothing and reports ``changed=False``.
"""

import abc
import dataclasses

#: The stevedore namespace publishers register in (``setup.cfg``).
NAMESPACE = 'gpu_passthrough_filter.publishers'


@dataclasses.dataclass(frozen=True)
class PublishResult:
    """What one publish did.

    :param changed: something outside the agent changed (a file rewritten,
        traits set); False when everything already matched.
    :param restart_needed: nova-compute must be restarted to see the
        change (it reads ``[pci]`` options only at start).
    :param summary: one line for the log, e.g. ``"added CUSTOM_..."``.
    """
    changed: bool
    restart_needed: bool = False
    summary: str = ''


class Publisher(metaclass=abc.ABCMeta):
    """Base of every publisher.

    :param conf: the agent's ``oslo_config.cfg.ConfigOpts`` with the agent
        options registered (:func:`gpu_passthrough_filter.conf.
        register_agent_opts`).
    """

    def __init__(self, conf):
        self.conf = conf

    @abc.abstractmethod
    def publish(self, inventory):
        """Make the outside world match ``inventory``.

        :param inventory: the :class:`~gpu_passthrough_filter.inventory.
            model.HostInventory` just discovered.
        :returns: a :class:`PublishResult`.
        :raises gpu_passthrough_filter.agent.exception.PublishError: nothing
            was published, or what was is still consistent (never half a
            change).
        """
