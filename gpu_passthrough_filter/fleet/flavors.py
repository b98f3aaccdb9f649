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
"""A nova flavor as the policy core's request and Placement's amounts.

The GPUs come from ``pci_passthrough:alias`` (``NAME:COUNT[,NAME:COUNT]``,
as nova parses it); an alias name becomes a GPU model through the
operator's alias map, or by the agent's default name ``gpu-<vendor>-
<device>`` (:func:`gpu_passthrough_filter.agent.nova_pci.
default_alias_name`). The policies come from the ``gpu_passthrough:*``
extra specs with the built-in defaults. What one guest takes from its
compute node: ``VCPU`` (``PCPU`` with ``hw:cpu_policy=dedicated``),
``MEMORY_MB``, ``DISK_GB`` (root + ephemeral + swap), with the flavor's
``resources:<CLASS>=<N>`` overrides, as nova asks Placement.

Pure module: no nova, oslo or openstacksdk import.
"""

import math
import re

from gpu_passthrough_filter.policy import extra_specs as specs_mod
from gpu_passthrough_filter.policy import model

ALIAS_SPEC = 'pci_passthrough:alias'
_DEFAULT_ALIAS = re.compile(r'^gpu-([0-9a-f]{4})-([0-9a-f]{4})$')


class FlavorError(ValueError):
    """The flavor asks for something this tool cannot read."""


def parse_alias_map(entries):
    """``["h100=10de:2330", ...]`` -> ``{"h100": "10de:2330"}``.

    :raises FlavorError: an entry is not ``NAME=VENDOR:PRODUCT``.
    """
    aliases = {}
    for entry in entries or ():
        name, sep, value = entry.partition('=')
        if not sep or not re.match(r'^[0-9a-f]{4}:[0-9a-f]{4}$',
                                   value.strip().lower()):
            raise FlavorError('--alias %r: expected NAME=VENDOR:PRODUCT, '
                              'e.g. h100=10de:2330' % entry)
        aliases[name.strip()] = value.strip().lower()
    return aliases


def demands(extra_specs, aliases):
    """The flavor's GPU demands, one per alias.

    :raises FlavorError: a malformed alias spec or an unknown name.
    """
    text = (extra_specs or {}).get(ALIAS_SPEC)
    if not text:
        return ()
    found = []
    for part in text.split(','):
        name, sep, count = part.strip().partition(':')
        if not sep or not count.strip().isdigit() or int(count) < 1:
            raise FlavorError('%s=%r: expected NAME:COUNT[,NAME:COUNT]'
                              % (ALIAS_SPEC, text))
        found.append(model.GPUDemand(int(count), frozenset(
            [_model_of(name.strip(), aliases)])))
    return tuple(found)


def _model_of(name, aliases):
    if name in aliases:
        return aliases[name]
    match = _DEFAULT_ALIAS.match(name)
    if match:
        return '%s:%s' % match.groups()
    raise FlavorError('alias %r: which GPU model is it? Pass --alias '
                      '%s=VENDOR:PRODUCT (the [pci] alias of nova.conf)'
                      % (name, name))


def needs(vcpus, ram_mb, disk_gb, ephemeral_gb=0, swap_mb=0,
          extra_specs=None):
    """Resource class -> amount one guest of the flavor takes on its host."""
    extra_specs = extra_specs or {}
    cpu_class = ('PCPU' if extra_specs.get('hw:cpu_policy') == 'dedicated'
                 else 'VCPU')
    amounts = {cpu_class: vcpus, 'MEMORY_MB': ram_mb,
               'DISK_GB': disk_gb + ephemeral_gb + math.ceil(
                   (swap_mb or 0) / 1024)}
    for key, value in extra_specs.items():
        if key.startswith('resources:') and str(value).isdigit():
            amounts[key[len('resources:'):]] = int(value)
    return amounts


def request(vcpus, ram_mb, extra_specs, aliases):
    """The :class:`~.model.GPURequest` of the flavor.

    :raises FlavorError: see :func:`demands`; a bad ``gpu_passthrough:*``
        value (the API refuses those, but a flavor may predate the
        validators).
    """
    try:
        policies = specs_mod.parse_policies(extra_specs)
    except specs_mod.InvalidExtraSpec as exc:
        raise FlavorError(str(exc))
    return model.GPURequest(
        demands=demands(extra_specs, aliases),
        isolation=policies.isolation, numa_affinity=policies.numa_affinity,
        locality=policies.locality, vcpus=vcpus, ram_mb=ram_mb)
