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
"""Flavor extra-spec validators, through nova's own validation registry."""

from nova.api.validation.extra_specs import validators as nova_validators
from nova import exception
from oslotest import base

from gpu_passthrough_filter.api import validators
from gpu_passthrough_filter.policy import extra_specs


class ValidatorsTest(base.BaseTestCase):

    def test_one_validator_per_table_entry(self):
        self.assertEqual(
            [spec.name for spec in extra_specs.POLICY_SPECS],
            [v.name for v in validators.register()])
        for spec, validator in zip(extra_specs.POLICY_SPECS,
                                   validators.register()):
            self.assertEqual(list(spec.values), validator.value['enum'])

    def test_nova_loaded_them_from_its_entry_point_namespace(self):
        for spec in extra_specs.POLICY_SPECS:
            self.assertIn(spec.name, nova_validators.VALIDATORS)
        self.assertIn('gpu_passthrough', nova_validators.NAMESPACES)

    def test_allowed_values_pass(self):
        for spec in extra_specs.POLICY_SPECS:
            for value in spec.values:
                nova_validators.validate(spec.name, value)

    def test_bad_value_names_the_allowed_ones(self):
        error = self.assertRaises(
            exception.ValidationError, nova_validators.validate,
            'gpu_passthrough:locality', 'sideways')
        self.assertIn("'sideways' is not one of: switch, numa, any",
                      str(error))

    def test_unknown_name_in_our_namespace_is_refused(self):
        self.assertRaises(
            exception.ValidationError, nova_validators.validate,
            'gpu_passthrough:isolaton', 'strict')
