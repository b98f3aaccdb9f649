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
"""Nova scheduler plugins: GPUPassthroughFilter and GPUPassthroughWeigher.

nova.conf loads them through the two functions below, which list the
classes registered as entry points of this project::

    [filter_scheduler]
    available_filters = nova.scheduler.filters.all_filters
    available_filters = gpu_passthrough_filter.scheduler.all_filters
    enabled_filters = ...,PciPassthroughFilter,GPUPassthroughFilter
    weight_classes = nova.scheduler.weights.all_weighers
    weight_classes = gpu_passthrough_filter.scheduler.all_weighers

Nova's loader (``nova.loadables.BaseLoader.get_matching_classes``) calls a
dotted name that is a function and uses the classes it returns.
"""

from oslo_log import log as logging
from stevedore import extension

LOG = logging.getLogger(__name__)

#: Entry-point namespace of the project's host filters.
FILTERS_NAMESPACE = 'gpu_passthrough_filter.filters'

#: Entry-point namespace of the project's host weighers.
WEIGHERS_NAMESPACE = 'gpu_passthrough_filter.weighers'


def _classes(namespace):
    def _failed(manager, entrypoint, error):
        LOG.error('Cannot load %s from %s: %s', entrypoint, namespace, error)

    manager = extension.ExtensionManager(
        namespace, invoke_on_load=False, on_load_failure_callback=_failed)
    return [ext.plugin for ext in sorted(manager, key=lambda e: e.name)]


def all_filters():
    """The project's host filter classes, for ``available_filters``."""
    return _classes(FILTERS_NAMESPACE)


def all_weighers():
    """The project's host weigher classes, for ``weight_classes``."""
    return _classes(WEIGHERS_NAMESPACE)
