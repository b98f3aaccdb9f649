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
"""GPUPassthroughWeigher through nova's real HostWeightHandler."""

import fixtures
from nova import objects
from nova.scheduler import filters as nova_filters
from nova.scheduler import weights as nova_weights
from stevedore import extension

from gpu_passthrough_filter.scheduler import filter as gpu_filter
from gpu_passthrough_filter.scheduler import request_log
from gpu_passthrough_filter.scheduler import weigher as gpu_weigher
from tests.unit.scheduler import fakes

FakeGPU = fakes.FakeGPU
HGX = fakes.fake_gpus.HGX_ADDRESSES


class WeigherTestCase(fakes.TestCase):

    def setUp(self):
        super(WeigherTestCase, self).setUp()
        self.log = self.useFixture(fixtures.FakeLogger(
            name='gpu_passthrough_filter', level='DEBUG'))

    def ranking(self, states, flavor, weigher=None):
        """Host names, best first, as nova's weight handler orders them."""
        weigher = weigher or gpu_weigher.GPUPassthroughWeigher()
        weighed = nova_weights.HostWeightHandler().get_weighed_objects(
            [weigher], states, fakes.request_spec(flavor))
        return [w.obj.host for w in weighed]


class RankingTest(WeigherTestCase):

    def test_best_fit_packs_the_fuller_host(self):
        """best_fit, 1 GPU: 'nearly-full' (1 GPU left) beats 'empty'."""
        self.flags(scorers=['best_fit'])
        hgx = fakes.fake_gpus.eight_gpu_host()
        states = [fakes.host_state('empty', hgx),
                  fakes.host_state('nearly-full', hgx, busy=HGX[1:])]
        self.assertEqual(['nearly-full', 'empty'],
                         self.ranking(states, fakes.flavor('h100:1')))

    def test_defaults_keep_whole_hosts_for_8_gpu_guests(self):
        """Defaults, after an 8-GPU guest: a 1-GPU guest packs.

        Once the mix holds 8-GPU guests, breaking 'empty' costs their
        share of 8 GPUs; 'nearly-full' (1 GPU left) wins.
        """
        weigher = gpu_weigher.GPUPassthroughWeigher()
        hgx = fakes.fake_gpus.eight_gpu_host()
        states = [fakes.host_state('empty', hgx),
                  fakes.host_state('nearly-full', hgx, busy=HGX[1:])]
        # Only 'empty' passes the 8-GPU request: nova skips the weighers,
        # the filter's record is what the weigher learns from.
        passed = nova_filters.HostFilterHandler().get_filtered_objects(
            [gpu_filter.GPUPassthroughFilter()], states,
            fakes.request_spec(fakes.flavor('h100:8')))
        self.assertEqual(['empty'], self.ranking(passed,
                                                 fakes.flavor('h100:8'),
                                                 weigher))
        self.assertEqual(['nearly-full', 'empty'], self.ranking(
            states, fakes.flavor('h100:1'), weigher))

    def test_locality_prefers_a_switch_pair(self):
        """2 GPUs: 'switch' (pair under one switch) beats 'split'."""
        states = [
            fakes.host_state('split', [
                FakeGPU('0000:81:00.0', numa_node=0),
                FakeGPU('0000:c1:00.0', numa_node=1)]),
            fakes.host_state('switch', [
                FakeGPU('0000:81:00.0', switch='0000:80:00.0'),
                FakeGPU('0000:82:00.0', switch='0000:80:00.0')]),
        ]
        self.assertEqual(['switch', 'split'],
                         self.ranking(states, fakes.flavor('h100:2')))

    def test_plain_guest_keeps_off_the_gpu_host(self):
        """No GPU: 'cpu-only' beats 'gpu', which has 8 free GPUs."""
        states = [
            fakes.host_state('gpu', fakes.fake_gpus.eight_gpu_host(),
                             vcpus=32, ram_mb=256 * 1024),
            fakes.host_state('cpu-only', vcpus=32, ram_mb=256 * 1024),
        ]
        self.assertEqual(
            ['cpu-only', 'gpu'],
            self.ranking(states, fakes.flavor(None, vcpus=16)))


class MultiplierTest(WeigherTestCase):

    def test_aggregate_overrides_the_multiplier(self):
        """An aggregate's gpu_passthrough_weight_multiplier wins."""
        self.flags(weight_multiplier=2.0)
        aggregate = objects.Aggregate(
            id=1, name='gpu', hosts=['agg'],
            metadata={'gpu_passthrough_weight_multiplier': '-1.5'})
        weigher = gpu_weigher.GPUPassthroughWeigher()
        self.assertEqual(-1.5, weigher.weight_multiplier(
            fakes.host_state('agg', aggregates=[aggregate])))
        self.assertEqual(2.0, weigher.weight_multiplier(
            fakes.host_state('plain')))

    def test_scorers_are_summed_with_their_multipliers(self):
        """Weight = 2 x 1.0 + 4 x 0.25 = 3.0, from in-memory scorers."""
        self.flags(scorer_multipliers={'one': '2', 'quarter': '4'})
        manager = extension.ExtensionManager.make_test_instance([
            extension.Extension('one', None, lambda *a: 1.0, None),
            extension.Extension('quarter', None, lambda *a: 0.25, None),
        ])
        weigher = gpu_weigher.GPUPassthroughWeigher(manager)
        state = fakes.host_state('gpu', [FakeGPU('0000:81:00.0')])
        spec = fakes.request_spec(fakes.flavor('h100:1'))
        self.assertEqual(3.0, weigher._weigh_object(state, spec))

    def test_configured_scorers_load_by_name(self):
        """[gpu_passthrough] scorers picks entry points; unknown ones warn."""
        self.flags(scorers=['locality', 'no_such_scorer'])
        weigher = gpu_weigher.GPUPassthroughWeigher()
        self.assertEqual(['locality'], list(weigher.scorers))
        self.assertIn('no_such_scorer', self.log.output)


class NeverRaisesTest(WeigherTestCase):

    def test_broken_scorer_weighs_zero(self):
        """A scorer that raises: weight 0.0, one error log with the host."""
        def broken(index, request, chosen):
            raise RuntimeError('boom')

        manager = extension.ExtensionManager.make_test_instance([
            extension.Extension('broken', None, broken, None)])
        weigher = gpu_weigher.GPUPassthroughWeigher(manager)
        state = fakes.host_state('gpu', [FakeGPU('0000:81:00.0')])
        spec = fakes.request_spec(fakes.flavor('h100:1'))
        self.assertEqual(0.0, weigher._weigh_object(state, spec))
        self.assertEqual(1, self.log.output.count(
            'GPUPassthroughWeigher failed on host (gpu, gpu)'))
        self.assertIn('boom', self.log.output)


class LearningScorerTest(WeigherTestCase):

    def test_observes_each_request_once_before_weighing(self):
        """A scorer class with observe(): one instance, one call a request.

        The request it sees is the project's GPURequest (2 H100s, the
        flavor's vCPUs), and it sees it before any host is weighed.
        """
        calls = []

        class Recorder(object):
            def observe(self, request):
                calls.append(('observe', request.gpu_count, request.vcpus))

            def __call__(self, index, request, chosen):
                calls.append(('score', index.name))
                return 0.5

        manager = extension.ExtensionManager.make_test_instance([
            extension.Extension('recorder', None, Recorder, None)])
        weigher = gpu_weigher.GPUPassthroughWeigher(manager)
        hgx = fakes.fake_gpus.eight_gpu_host()
        states = [fakes.host_state('a', hgx), fakes.host_state('b', hgx)]
        self.ranking(states, fakes.flavor('h100:2', vcpus=16), weigher)
        self.ranking(states, fakes.flavor(None, vcpus=4), weigher)
        observed = [call for call in calls if call[0] == 'observe']
        self.assertEqual([('observe', 2, 16), ('observe', 0, 4)], observed)
        self.assertEqual('observe', calls[0][0])
        self.assertEqual(6, len(calls))

    def test_learning_failure_still_weighs(self):
        """observe() raising: logged once, the hosts are still weighed."""
        class Broken(object):
            def observe(self, request):
                raise RuntimeError('cannot learn')

            def __call__(self, index, request, chosen):
                return 1.0 if index.name == 'b' else 0.0

        manager = extension.ExtensionManager.make_test_instance([
            extension.Extension('broken', None, Broken, None)])
        weigher = gpu_weigher.GPUPassthroughWeigher(manager)
        hgx = fakes.fake_gpus.eight_gpu_host()
        states = [fakes.host_state('a', hgx), fakes.host_state('b', hgx)]
        self.assertEqual(['b', 'a'], self.ranking(
            states, fakes.flavor('h100:1'), weigher))
        self.assertIn('could not learn from request', self.log.output)
        self.assertIn('cannot learn', self.log.output)

    def test_fragmentation_gradient_sends_cpu_hungry_guests_to_spare_cpu(
            self):
        """After 1-GPU/12-vCPU guests, a 1-GPU/40-vCPU guest: 'roomy' wins.

        'tight' has 8 GPUs and 96 vCPUs (12 per GPU), 'roomy' 8 GPUs and
        192 vCPUs; nova's real weight handler ranks them.
        """
        self.flags(scorers=['fragmentation_gradient'])
        weigher = gpu_weigher.GPUPassthroughWeigher()
        hgx = fakes.fake_gpus.eight_gpu_host()
        states = [fakes.host_state('tight', hgx, vcpus=96, ram_mb=2 ** 20),
                  fakes.host_state('roomy', hgx, vcpus=192, ram_mb=2 ** 20)]
        for _ in range(3):
            self.ranking(states, fakes.flavor('h100:1', vcpus=12,
                                              memory_mb=1024), weigher)
        self.assertEqual(['roomy', 'tight'], self.ranking(
            states, fakes.flavor('h100:1', vcpus=40, memory_mb=1024),
            weigher))


class RequestLogTest(WeigherTestCase):

    def test_weigher_learns_requests_it_never_weighed(self):
        """Two 1-host requests, then a 2-host one: observed 4, 2, then 1.

        Nova weighs only the last (the first two have one host each);
        the filter's records carry the first two to the weigher, in order.
        """
        seen = []

        class Recorder(object):
            def observe(self, request):
                seen.append(request.gpu_count)

            def __call__(self, index, request, chosen):
                return 0.5

        weigher = gpu_weigher.GPUPassthroughWeigher(
            extension.ExtensionManager.make_test_instance([
                extension.Extension('recorder', None, Recorder, None)]))
        hgx = fakes.fake_gpus.eight_gpu_host()
        states = [fakes.host_state('a', hgx),
                  fakes.host_state('b', hgx, busy=HGX[2:])]
        for gpus, hosts in (('h100:4', states[:1]), ('h100:2', states[1:]),
                            ('h100:1', states)):
            spec = fakes.request_spec(fakes.flavor(gpus))
            passed = nova_filters.HostFilterHandler().get_filtered_objects(
                [gpu_filter.GPUPassthroughFilter()], hosts, spec)
            nova_weights.HostWeightHandler().get_weighed_objects(
                [weigher], passed, spec)
        self.assertEqual([4, 2, 1], seen)

    def test_log_is_bounded_and_read_from_a_cursor(self):
        """Size 2: a reader at 0 after 3 records gets the last 2."""
        log = request_log.RequestLog(size=2)
        start = log.cursor()
        for name in ('one', 'two', 'three'):
            log.record(name, name)
        cursor, requests = log.since(start)
        self.assertEqual(['two', 'three'], requests)
        self.assertEqual((cursor, []), log.since(cursor))
        self.assertEqual('three', log.last_spec)
