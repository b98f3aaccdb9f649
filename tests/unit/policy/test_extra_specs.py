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
"""The extra-spec table, the policy parser and nova's alias syntax."""

from oslo_config import cfg
from oslo_config import fixture as config_fixture
from oslotest import base

from gpu_passthrough_filter.conf import scheduler as scheduler_conf
from gpu_passthrough_filter.policy import extra_specs
from gpu_passthrough_filter.policy import model

ISO = 'gpu_passthrough:isolation'
NUMA = 'gpu_passthrough:numa_affinity'
LOC = 'gpu_passthrough:locality'


class TableTest(base.BaseTestCase):

    def test_names_and_values(self):
        """The published names and values (never rename one)."""
        self.assertEqual(
            [(ISO, ('strict', 'any')),
             (NUMA, ('required', 'preferred', 'none')),
             (LOC, ('switch', 'numa', 'any'))],
            [(s.name, s.values) for s in extra_specs.POLICY_SPECS])

    def test_defaults_match_the_config_options(self):
        """Each entry's option has the table's default and values."""
        opts = {opt.name: opt for opt in scheduler_conf.OPTS}
        for spec in extra_specs.POLICY_SPECS:
            opt = opts[spec.default_option]
            self.assertEqual(spec.builtin_default, opt.default)
            self.assertEqual(list(spec.values),
                             [c[0] for c in opt.type.choices.items()])

    def test_every_value_has_help(self):
        for spec in extra_specs.POLICY_SPECS:
            self.assertEqual(spec.values,
                             tuple(v for v, _ in spec.value_descriptions()))
            self.assertTrue(all(h for _, h in spec.value_descriptions()))


class ParsePoliciesTest(base.BaseTestCase):

    def test_builtin_defaults(self):
        """No specs, no defaults: strict, preferred, any."""
        self.assertEqual(
            (model.Isolation.STRICT, model.NumaAffinity.PREFERRED,
             model.Locality.ANY),
            extra_specs.parse_policies({}))

    def test_flavor_overrides_defaults(self):
        """Flavor values win; case and spaces do not matter."""
        policies = extra_specs.parse_policies(
            {ISO: 'any', LOC: ' Switch ', 'hw:numa_nodes': '1'},
            {'numa_affinity': 'required', 'isolation': 'strict'})
        self.assertEqual(model.Isolation.ANY, policies.isolation)
        self.assertEqual(model.NumaAffinity.REQUIRED, policies.numa_affinity)
        self.assertEqual(model.Locality.SWITCH, policies.locality)

    def test_defaults_from_oslo_config(self):
        """A CONF.gpu_passthrough group serves as defaults."""
        conf = self.useFixture(config_fixture.Config(cfg.ConfigOpts()))
        scheduler_conf.register_opts(conf.conf)
        conf.config(group='gpu_passthrough', default_locality='numa',
                    default_isolation='any')
        policies = extra_specs.parse_policies(
            None, conf.conf.gpu_passthrough)
        self.assertEqual(
            (model.Isolation.ANY, model.NumaAffinity.PREFERRED,
             model.Locality.NUMA), tuple(policies))

    def test_bad_value_names_allowed_values(self):
        """locality=sideways: InvalidExtraSpec naming switch, numa, any."""
        error = self.assertRaises(extra_specs.InvalidExtraSpec,
                                  extra_specs.parse_policies,
                                  {LOC: 'sideways'})
        self.assertEqual(LOC, error.name)
        self.assertIn("'sideways'", str(error))
        self.assertIn('allowed: switch, numa, any', str(error))

    def test_non_string_value_is_refused(self):
        self.assertRaises(extra_specs.InvalidExtraSpec,
                          extra_specs.parse_policies, {ISO: 1})
