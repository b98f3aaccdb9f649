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
"""Workload profile and expected fragmentation: tables and properties."""

import hypothesis
from hypothesis import strategies as st
from oslotest import base

from gpu_passthrough_filter.policy import workload_profile as wp
from tests.unit.policy import shapes

H100 = shapes.H100
A100 = shapes.A100
ONE = wp.Shape(1, vcpus=10, ram_mb=1000)
EIGHT = wp.Shape(8, vcpus=80, ram_mb=8000)


def free(gpus, vcpus=None, ram_mb=None, model=H100):
    return wp.Resources({model: gpus}, vcpus, ram_mb)


class ProfileTest(base.BaseTestCase):

    def test_shares_follow_the_window(self):
        """Window 3: after 1, 1, 8, 8 the mix is one third 1-GPU."""
        mix = wp.WorkloadProfile(window=3)
        for shape in (ONE, ONE, EIGHT, EIGHT):
            mix.observe(shape)
        self.assertEqual(3, len(mix))
        self.assertEqual({ONE: 1 / 3.0, EIGHT: 2 / 3.0}, dict(mix.mix()))

    def test_guests_without_gpus_are_not_remembered(self):
        """Plain VMs do not use GPUs: they are not part of the GPU mix."""
        mix = wp.WorkloadProfile()
        mix.observe(wp.Shape(0, vcpus=4))
        self.assertEqual((), mix.mix())

    def test_shape_of_a_request(self):
        """A request's shape keeps GPUs, vCPUs, RAM and accepted models."""
        self.assertEqual(
            wp.Shape(2, 8.0, 65536.0, frozenset([H100])),
            wp.shape_of(shapes.request(2)))


class ExpectedFragmentationTest(base.BaseTestCase):
    """Each case: (free resources, mix, expected fragmented GPUs)."""

    CASES = [
        ('no free GPU', free(0, 100, 10 ** 6), [(ONE, 1.0)], 0.0),
        ('everything fits', free(8, 80, 8000), [(ONE, 1.0)], 0.0),
        ('vCPUs for 3 of 8 GPUs', free(8, 30, 10 ** 6), [(ONE, 1.0)], 5.0),
        ('RAM for 2.5 of 8', free(8, 100, 2500), [(ONE, 1.0)], 5.5),
        ('no vCPU left', free(4, 0, 10 ** 6), [(ONE, 1.0)], 4.0),
        ('half the mix needs 8', free(4, 100, 10 ** 6),
         [(ONE, 0.5), (EIGHT, 0.5)], 2.0),
        ('model not accepted', free(2, 100, 10 ** 6, model=A100),
         [(wp.Shape(1, 1, 1, frozenset([H100])), 1.0)], 2.0),
        ('unlimited vCPUs and RAM', free(3), [(ONE, 1.0)], 0.0),
    ]

    def test_cases(self):
        for name, resources, mix, expected in self.CASES:
            self.assertEqual(
                expected, wp.expected_fragmentation(resources, mix),
                name)

    def test_delta_of_a_cpu_hungry_guest(self):
        """1 GPU + 20 vCPUs on 8 GPUs/80 vCPUs leaves 7 GPUs, 60 vCPUs.

        Guests of 10 vCPUs then fill 6 of the 7: one GPU more is lost.
        """
        before = free(8, 80, 10 ** 6)
        placed = wp.after(before, 20, 0, {H100: 1})
        self.assertEqual(1.0, wp.fragmentation_delta(
            before, placed, [(ONE, 1.0)]))

    def test_delta_of_filling_a_half_stranded_gpu(self):
        """A small guest on the last GPU, with vCPUs for half a guest.

        Before, the mix could use half of that GPU (5 of 10 vCPUs); the
        guest takes it whole: delta -0.5.
        """
        before = free(1, 5, 10 ** 6)
        placed = wp.after(before, 5, 0, {H100: 1})
        self.assertEqual(-0.5, wp.fragmentation_delta(
            before, placed, [(ONE, 1.0)]))


shape_strategy = st.builds(
    wp.Shape, st.integers(1, 8), st.floats(0, 128), st.floats(0, 1e6),
    st.sampled_from([frozenset(), frozenset([H100]), frozenset([A100])]))
resources_strategy = st.builds(
    wp.Resources,
    st.dictionaries(st.sampled_from([H100, A100]), st.integers(0, 16)),
    st.none() | st.floats(-8, 256), st.none() | st.floats(-8, 2e6))


class PropertiesTest(base.BaseTestCase):

    @hypothesis.given(resources_strategy,
                      st.lists(shape_strategy, min_size=1, max_size=12))
    def test_fragmentation_is_between_zero_and_free_gpus(self, free_now,
                                                         observed):
        mix = wp.WorkloadProfile(window=8)
        for shape in observed:
            mix.observe(shape)
        value = wp.expected_fragmentation(free_now, mix.mix())
        self.assertGreaterEqual(value, -1e-9)
        self.assertLessEqual(value, free_now.gpus + 1e-9)
        self.assertAlmostEqual(1.0, sum(s for _, s in mix.mix()))

    @hypothesis.given(resources_strategy, shape_strategy,
                      st.floats(0, 64), st.floats(0, 1e5))
    def test_taking_cpu_or_ram_never_lowers_it(self, free_now, shape,
                                               vcpus, ram_mb):
        """A guest without GPUs can only strand GPUs, never free them."""
        placed = wp.after(free_now, vcpus, ram_mb)
        self.assertGreaterEqual(
            wp.fragmentation_delta(free_now, placed, [(shape, 1.0)]),
            -1e-9)
