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
"""The agent-to-scheduler tag contract: what is encoded decodes back.

Every writer (the agent, the simulator, the functional tests' fake
computes) encodes with :func:`tags.encode`, the scheduler decodes with
:func:`tags.decode`; a value that goes through nova's device_spec parser
and pool keys comes back as strings.
"""

import json

from hypothesis import given
from hypothesis import strategies as st
from oslotest import base

from gpu_passthrough_filter import tags

_identifiers = st.one_of(st.none(), st.from_regex(
    r'\A[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]\Z'), st.from_regex(
    r'\Apci[0-9a-f]{4}:[0-9a-f]{2}\Z'))
_gpu_tags = st.builds(
    tags.GPUTags,
    iommu_group=st.one_of(st.none(), st.integers(0, 4096).map(str)),
    isolation=st.sampled_from(tags.ISOLATION_VERDICTS),
    switch=_identifiers, root=_identifiers,
    numa_node=st.one_of(st.none(), st.integers(0, 255)),
    model=st.one_of(st.none(), st.from_regex(r'\A[0-9a-f]{4}:[0-9a-f]{4}\Z')),
    group_gpus=st.one_of(st.none(), st.integers(1, 64)))
_junk = st.one_of(st.none(), st.integers(), st.floats(), st.booleans(),
                  st.text(max_size=8), st.lists(st.integers(), max_size=2))


class TagContractTest(base.BaseTestCase):

    @given(_gpu_tags)
    def test_round_trip(self, gpu_tags):
        encoded = tags.encode(gpu_tags)
        self.assertEqual(set(tags.ALL_TAGS), set(encoded))
        self.assertTrue(all(isinstance(v, str) for v in encoded.values()))
        # nova reads device_spec as JSON and keeps the tags as strings.
        self.assertEqual(gpu_tags, tags.decode(json.loads(json.dumps(
            encoded))))

    @given(st.dictionaries(st.sampled_from(tags.ALL_TAGS), _junk))
    def test_decode_never_raises_and_junk_is_unknown(self, pool):
        decoded = tags.decode(pool)
        self.assertIn(decoded.isolation, tags.ISOLATION_VERDICTS)
        self.assertTrue(decoded.numa_node is None or decoded.numa_node >= 0)
        self.assertTrue(decoded.group_gpus is None or decoded.group_gpus > 0)

    def test_the_published_values(self):
        """What a device_spec line says, for operators reading one."""
        self.assertEqual(
            {tags.IOMMU_GROUP: 'unknown', tags.ISOLATION: 'unknown',
             tags.SWITCH: 'none', tags.ROOT: 'unknown', tags.NUMA_NODE: '-1',
             tags.MODEL: 'unknown', tags.GROUP_GPUS: 'unknown'},
            tags.encode(tags.GPUTags()))
        self.assertEqual(
            tags.GPUTags(iommu_group='42', isolation=tags.SHARED,
                         switch='0000:17:00.0', numa_node=1, group_gpus=2),
            tags.decode({tags.IOMMU_GROUP: ' 42', tags.ISOLATION: 'SHARED',
                         tags.SWITCH: '0000:17:00.0', tags.NUMA_NODE: '1',
                         tags.GROUP_GPUS: '2', tags.ROOT: 'unknown'}))

    def test_integers_are_ascii_digits_only(self):
        cases = {'7': 7, '-1': -1, ' 3 ': 3, '¹': None, '1.5': None,
                 True: None, 4: 4, '': None, None: None}
        self.assertEqual(cases, {value: tags.decode_integer(value)
                                 for value in cases})
