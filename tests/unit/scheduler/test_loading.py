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
"""nova.conf can name the project's collections; nova's loaders accept them."""

from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights
from oslotest import base

from gpu_passthrough_filter import scheduler
from gpu_passthrough_filter.scheduler import filter as gpu_filter
from gpu_passthrough_filter.scheduler import nova_filters as fast_filters
from gpu_passthrough_filter.scheduler import weigher as gpu_weigher


class LoadingTest(base.BaseTestCase):

    def test_collections_list_the_classes(self):
        self.assertEqual([fast_filters.FastNUMATopologyFilter,
                          fast_filters.FastPciPassthroughFilter,
                          gpu_filter.GPUPassthroughFilter],
                         scheduler.all_filters())
        self.assertEqual([gpu_weigher.GPUPassthroughWeigher],
                         scheduler.all_weighers())

    def test_nova_filter_loader_accepts_the_collection(self):
        """available_filters = nova's all_filters + ours, as in nova.conf."""
        classes = nova_filters.HostFilterHandler().get_matching_classes([
            'nova.scheduler.filters.all_filters',
            'gpu_passthrough_filter.scheduler.all_filters'])
        names = [cls.__name__ for cls in classes]
        self.assertIn('PciPassthroughFilter', names)
        self.assertEqual('GPUPassthroughFilter', names[-1])

    def test_nova_weigher_loader_accepts_the_collection(self):
        classes = nova_weights.HostWeightHandler().get_matching_classes([
            'nova.scheduler.weights.all_weighers',
            'gpu_passthrough_filter.scheduler.all_weighers'])
        names = [cls.__name__ for cls in classes]
        self.assertIn('PCIWeigher', names)
        self.assertEqual('GPUPassthroughWeigher', names[-1])
