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
"""Flavor extra-spec validators for nova-api.

Registered in nova's own stevedore namespace
``nova.api.extra_spec_validators`` (``setup.cfg``): nova-api then refuses
a bad ``gpu_passthrough:*`` value, or an unknown ``gpu_passthrough:*``
name, with HTTP 400 naming the allowed values (flavor extra-spec
validation is on from API microversion 2.86). Built from the policy
core's one table, :data:`~gpu_passthrough_filter.policy.extra_specs.
POLICY_SPECS`, so the API, the scheduler and the docs cannot disagree.
"""

from nova.api.validation.extra_specs import base

from gpu_passthrough_filter.policy import extra_specs


def _validator(spec):
    """A nova validator for one :class:`~.extra_specs.PolicySpec`."""
    values = '; '.join('``%s``: %s' % pair
                       for pair in spec.value_descriptions())
    return base.ExtraSpecValidator(
        name=spec.name,
        description='%s Default: ``[gpu_passthrough] %s``.' % (
            spec.description, spec.default_option),
        value={
            'type': str,
            'description': values,
            'enum': list(spec.values),
        },
    )


#: One validator per ``gpu_passthrough:*`` extra spec.
VALIDATORS = [_validator(spec) for spec in extra_specs.POLICY_SPECS]


def register():
    """The validators, as nova's ``load_validators()`` asks for them."""
    return VALIDATORS
