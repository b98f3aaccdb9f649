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
"""The ``json`` publisher: the full inventory, for operators and tools.

Writes :meth:`~gpu_passthrough_filter.inventory.model.HostInventory.
to_json` to ``[json_publisher] output_file`` (atomically, and only when it
changed) or to standard output for ``-``.
"""

import sys

from gpu_passthrough_filter.agent import base
from gpu_passthrough_filter.agent import nova_pci

#: ``output_file`` value meaning standard output.
STDOUT = '-'


class JsonPublisher(base.Publisher):
    """Publishes the whole inventory as indented, key-sorted JSON.

    :param conf: the agent's ``ConfigOpts``.
    :param stdout: stream for ``-``; standard output by default.
    """

    def __init__(self, conf, stdout=None):
        super().__init__(conf)
        self.stdout = stdout

    def publish(self, inventory):
        text = inventory.to_json(indent=2) + '\n'
        path = self.conf.json_publisher.output_file
        if path == STDOUT:
            stream = self.stdout or sys.stdout
            stream.write(text)
            stream.flush()
            return base.PublishResult(changed=True,
                                      summary='inventory written to stdout')
        if nova_pci.write_if_changed(path, text):
            return base.PublishResult(changed=True,
                                      summary='%s rewritten' % path)
        return base.PublishResult(changed=False, summary='%s unchanged' % path)
