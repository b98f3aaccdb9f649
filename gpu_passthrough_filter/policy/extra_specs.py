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
"""The flavor extra specs of this project, as one table of data.

:data:`POLICY_SPECS` is the single source of the ``gpu_passthrough:*``
names, their allowed values, their help text and the
``[gpu_passthrough]`` option holding each default. The nova extra-spec
validators, the docs and :func:`parse_policies` all read it. The names
and values are a published interface: never rename one.

Pure module: no nova, oslo or openstacksdk import.
"""

import collections.abc
import dataclasses
import typing

from gpu_passthrough_filter.policy import model

#: Namespace prefix of this project's flavor extra specs.
PREFIX = 'gpu_passthrough'

#: Nova's own extra spec that names PCI aliases and counts.
ALIAS_SPEC = 'pci_passthrough:alias'


class InvalidExtraSpec(ValueError):
    """A ``gpu_passthrough:*`` or alias extra spec has a bad value."""

    def __init__(self, name, value, allowed):
        self.name = name
        self.value = value
        self.allowed = allowed
        super(InvalidExtraSpec, self).__init__(
            'Invalid value %r for flavor extra spec %s; allowed: %s' % (
                value, name, allowed))


@dataclasses.dataclass(frozen=True)
class PolicySpec:
    """One ``gpu_passthrough:*`` extra spec.

    :param key: short name, also the :class:`Policies` field.
    :param name: full extra spec name, e.g. ``gpu_passthrough:locality``.
    :param values: allowed values, in documentation order.
    :param description: help text (the nova validator shows it).
    :param default_option: ``[gpu_passthrough]`` option with the default.
    :param builtin_default: default when no configuration is given (the
        option's own default).
    :param enum_type: the :mod:`~.model` enum the value converts to.
    """
    key: str
    name: str
    values: typing.Tuple[str, ...]
    description: str
    default_option: str
    builtin_default: str
    enum_type: type

    def value_descriptions(self):
        """``(value, help)`` pairs, in documentation order.

        The one help text of each value: nova's extra-spec validator, the
        ``[gpu_passthrough] default_*`` options' choices and the docs all
        show it.
        """
        return tuple((value, _VALUE_HELP[self.key][value])
                     for value in self.values)


#: Help of every policy value, by spec key (see
#: :meth:`PolicySpec.value_descriptions`).
_VALUE_HELP = {
    'isolation': {
        'strict': 'Every GPU given sits in an IOMMU group the guest owns '
                  'whole; GPUs of unknown isolation are never given.',
        'any': 'IOMMU isolation is not checked (a busy group mate still '
               'rules a GPU out).',
    },
    'numa_affinity': {
        'required': 'All GPUs on one known host NUMA node, or the host is '
                    'rejected.',
        'preferred': 'One NUMA node when the host can; otherwise any.',
        'none': 'The NUMA node of the GPUs is ignored.',
    },
    'locality': {
        'switch': 'All GPUs of a multi-GPU guest under one PCIe switch.',
        'numa': 'All GPUs of a multi-GPU guest on one NUMA node.',
        'any': 'No requirement; better locality is still preferred.',
    },
}

#: The ``gpu_passthrough:*`` extra specs, one entry each.
POLICY_SPECS = (
    PolicySpec(
        key='isolation',
        name=PREFIX + ':isolation',
        values=tuple(v.value for v in model.Isolation),
        description='IOMMU isolation of the GPUs given to the guest. '
                    '``strict``: only GPUs whose IOMMU group the guest can '
                    'own whole. ``any``: no isolation check.',
        default_option='default_isolation',
        builtin_default=model.Isolation.STRICT.value,
        enum_type=model.Isolation),
    PolicySpec(
        key='numa_affinity',
        name=PREFIX + ':numa_affinity',
        values=tuple(v.value for v in model.NumaAffinity),
        description='NUMA affinity of the GPUs: ``required`` puts all GPUs '
                    'on one host NUMA node or rejects the host, '
                    '``preferred`` tries to, ``none`` ignores NUMA. Applies '
                    'also to guests without ``hw:numa_nodes``.',
        default_option='default_numa_affinity',
        builtin_default=model.NumaAffinity.PREFERRED.value,
        enum_type=model.NumaAffinity),
    PolicySpec(
        key='locality',
        name=PREFIX + ':locality',
        values=tuple(v.value for v in model.Locality),
        description='PCIe locality of multi-GPU guests, a hard '
                    'requirement: ``switch`` puts all GPUs under one PCIe '
                    'switch, ``numa`` on one NUMA node, ``any`` anywhere.',
        default_option='default_locality',
        builtin_default=model.Locality.ANY.value,
        enum_type=model.Locality),
)


def policy_spec(key):
    """The :class:`PolicySpec` of ``key`` (``isolation``, ...)."""
    return next(spec for spec in POLICY_SPECS if spec.key == key)


class Policies(typing.NamedTuple):
    """The three policies of one flavor."""
    isolation: model.Isolation
    numa_affinity: model.NumaAffinity
    locality: model.Locality


def _default_for(spec, defaults):
    # ``defaults`` is a mapping (short key, full name or option name) or an
    # object with the option names as attributes, e.g.
    # ``CONF.gpu_passthrough``.
    if defaults is None:
        return spec.builtin_default
    if isinstance(defaults, collections.abc.Mapping):
        for key in (spec.key, spec.name, spec.default_option):
            if key in defaults and defaults[key] is not None:
                return defaults[key]
        return spec.builtin_default
    value = getattr(defaults, spec.default_option, None)
    return spec.builtin_default if value is None else value


def _convert(spec, value):
    text = value.value if hasattr(value, 'value') else value
    if isinstance(text, str):
        text = text.strip().lower()
    if text not in spec.values:
        raise InvalidExtraSpec(spec.name, value, ', '.join(spec.values))
    return spec.enum_type(text)


def parse_policies(extra_specs, defaults=None):
    """Read the ``gpu_passthrough:*`` policies of a flavor.

    :param extra_specs: the flavor's extra specs (a mapping), or None.
    :param defaults: the defaults for specs the flavor does not set: a
        mapping keyed by short key (``"isolation"``), full name or option
        name, or an object with the option names as attributes
        (``CONF.gpu_passthrough``); None uses the built-in defaults.
    :returns: :class:`Policies` ``(isolation, numa_affinity, locality)``.
    :raises InvalidExtraSpec: for a value (or default) not allowed; the
        message names the allowed values.
    """
    extra_specs = extra_specs or {}
    values = []
    for spec in POLICY_SPECS:
        if spec.name in extra_specs:
            values.append(_convert(spec, extra_specs[spec.name]))
        else:
            values.append(_convert(spec, _default_for(spec, defaults)))
    return Policies(*values)
