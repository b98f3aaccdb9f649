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
"""The ``nova_pci`` publisher: a nova config file with ``[pci]`` entries.

nova-compute reads the file through ``--config-dir`` (or one more
``--config-file``). It holds one ``[pci] device_spec`` entry per offered
GPU (:mod:`.selection`), matched by PCI address and ids and carrying the
agent's tags (:mod:`gpu_passthrough_filter.tags`); nova's PCI tracker
copies those tags into the scheduler's ``HostState.pci_stats`` pools. It
also holds one ``[pci] alias`` per offered GPU model. With
``[nova_pci] report_in_placement`` each entry also names its model's
resource class and device traits, so nova reports the GPUs to Placement.

``device_spec`` and ``alias`` are multi-valued options: oslo.config adds
the entries of this file to those of nova.conf (a NIC's device_spec there
stays valid).

The file is a pure function of the inventory and the options (sorted,
no timestamp): an unchanged inventory gives a byte-identical file, which
is then not rewritten. A changed file is replaced atomically (a temporary
file in the same directory, then ``os.replace``) and the result says that
nova-compute must be restarted: it reads ``[pci]`` only at start.
"""

import json

from oslo_log import log as logging

from gpu_passthrough_filter.agent import base
from gpu_passthrough_filter.agent import exception
from gpu_passthrough_filter.agent import selection
from gpu_passthrough_filter import files
from gpu_passthrough_filter import tags
from gpu_passthrough_filter import traits

LOG = logging.getLogger(__name__)

#: nova's device type of a plain PCI device (``obj_fields.PciDeviceType.
#: STANDARD``); whole GPUs are neither SR-IOV PFs nor VFs.
DEVICE_TYPE = 'type-PCI'


def device_spec(choice, report_in_placement=False):
    """The ``[pci] device_spec`` entry (a dict) of one offered GPU.

    :param choice: a :class:`~.selection.Choice` that is offered.
    :param report_in_placement: add ``resource_class`` and ``traits``.
    """
    gpu = choice.gpu
    spec = {'address': gpu.address, 'vendor_id': gpu.vendor,
            'product_id': gpu.device}
    spec.update(tags.encode(tags.GPUTags(
        iommu_group=gpu.iommu_group, isolation=gpu.isolation,
        switch=gpu.switch, root=gpu.root_complex or gpu.root_port,
        numa_node=gpu.numa_node, model=gpu.model,
        group_gpus=choice.group_gpus)))
    if report_in_placement:
        spec['resource_class'] = traits.model_resource_class(gpu.vendor,
                                                             gpu.device)
        spec['traits'] = ','.join(traits.device_traits(
            gpu.vendor, gpu.device, gpu.isolation, gpu.numa_node, gpu.switch,
            gpu.iommu_group))
    return spec


def alias(vendor, device, name, report_in_placement=False):
    """The ``[pci] alias`` entry (a dict) of one GPU model.

    Aliases cannot carry custom tags; the keys are nova's (``name``,
    ``vendor_id``, ``product_id``, ``device_type``, ``resource_class``).

    :param vendor: vendor id.
    :param device: device id.
    :param name: the alias name flavors use.
    :param report_in_placement: add the model's ``resource_class``.
    """
    entry = {'name': name, 'vendor_id': vendor, 'product_id': device,
             'device_type': DEVICE_TYPE}
    if report_in_placement:
        entry['resource_class'] = traits.model_resource_class(vendor, device)
    return entry


def default_alias_name(vendor, device):
    """``gpu-<vendor>-<device>``: stable across pci.ids versions."""
    return 'gpu-%s-%s' % (vendor, device)


def parse_alias_names(entries):
    """Read ``[nova_pci] alias_names``: ``vendor:device=name`` entries.

    :param entries: the option's list.
    :returns: dict ``(vendor, device) -> name``.
    :raises exception.ConfigError: an entry is malformed.
    """
    names = {}
    for entry in entries:
        model, sep, name = entry.partition('=')
        vendor, colon, device = model.strip().lower().partition(':')
        if not (sep and colon and name.strip() and _is_hex4(vendor)
                and _is_hex4(device)):
            raise exception.ConfigError(
                reason='[nova_pci] alias_names: %r is not '
                       'vendor:device=name, e.g. 10de:2330=h100' % entry)
        names[(vendor, device)] = name.strip()
    return names


def render(inventory, include_shared_groups=False, report_in_placement=False,
           alias_names=None):
    """The whole file, as text.

    :param inventory: the discovered host inventory.
    :param include_shared_groups: see :func:`.selection.choose`.
    :param report_in_placement: add Placement fields.
    :param alias_names: dict ``(vendor, device) -> alias name``; models
        not in it get :func:`default_alias_name`.
    """
    alias_names = alias_names or {}
    choices = selection.choose(inventory, include_shared_groups,
                               hold_in_placement=report_in_placement)
    lines = [
        '# Generated by gpu-passthrough-agent for host %s. Do not edit:'
        % _one_line(inventory.hostname),
        '# the agent rewrites it when the GPUs change; restart nova-compute',
        '# after a change (it reads [pci] options only at start).',
        '#',
        '# GPUs found (%d), and why each is offered or left out:'
        % len(choices),
    ]
    lines += ['#   %s %s: %s: %s' % (
        choice.gpu.address, _one_line(choice.gpu.name or choice.gpu.model),
        _verdict(choice), _one_line(choice.reason))
        for choice in choices] or ['#   (none)']
    lines += ['', '[pci]']
    for choice in choices:
        if choice.offered:
            lines.append('device_spec = %s' % _dumps(
                device_spec(choice, report_in_placement)))
    models = sorted({(gpu.vendor, gpu.device)
                     for gpu in selection.offered(choices)})
    for vendor, device in models:
        name = alias_names.get((vendor, device),
                               default_alias_name(vendor, device))
        lines.append('alias = %s' % _dumps(
            alias(vendor, device, name, report_in_placement)))
    return '\n'.join(lines) + '\n'


def read_existing(path):
    """The text of ``path``, None when there is no such file.

    :raises exception.OutputError: the file exists but cannot be read.
    """
    try:
        with open(path, encoding='utf-8') as stream:
            return stream.read()
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise exception.OutputError(path=path, reason=exc)


def write_if_changed(path, text):
    """Atomically replace ``path`` with ``text`` unless it already is.

    :returns: True when the file was written.
    :raises exception.OutputError: the file cannot be read or written.
    """
    if read_existing(path) == text:
        return False
    replace_atomically(path, text)
    return True


def replace_atomically(path, text):
    """Write ``text`` to ``path`` in one rename (readers never see a part).

    :raises exception.OutputError: on any I/O error.
    """
    try:
        files.replace_atomically(path, text)
    except OSError as exc:
        raise exception.OutputError(path=path, reason=exc.strerror or exc)


class NovaPciPublisher(base.Publisher):
    """Writes :func:`render` to ``[nova_pci] output_file``."""

    def publish(self, inventory):
        group = self.conf.nova_pci
        text = render(inventory,
                      include_shared_groups=group.include_shared_groups,
                      report_in_placement=group.report_in_placement,
                      alias_names=parse_alias_names(group.alias_names))
        before = read_existing(group.output_file)
        if before == text:
            return base.PublishResult(
                changed=False, summary='%s unchanged' % group.output_file)
        replace_atomically(group.output_file, text)
        offered = text.count('\ndevice_spec = ')
        if before is not None and _settings(before) == _settings(text):
            # NOTE: only the comments changed (a GPU held or released in
            # Placement, a reason reworded): nova reads nothing new.
            return base.PublishResult(
                changed=True, summary='%s: comments updated, %d GPU(s), '
                'nothing for nova-compute to read' % (group.output_file,
                                                      offered))
        return base.PublishResult(
            changed=True, restart_needed=True,
            summary='%s rewritten with %d GPU(s); restart nova-compute to '
                    'apply it' % (group.output_file, offered))


def _settings(text):
    """The lines of a nova config file that nova reads (no comments)."""
    return [line for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith('#')]


def _verdict(choice):
    if not choice.offered:
        return 'left out'
    if choice.held:
        # NOTE: kept in device_spec so that nova keeps its resource
        # provider, which the placement publisher reserves: no restart.
        return 'offered, held in Placement (%s)' % _one_line(choice.held)
    return 'offered'


def _dumps(entry):
    return json.dumps(entry, sort_keys=True)


def _one_line(text):
    # NOTE: names and reasons come from the host (pci.ids, sysfs); a line
    # break in them must not end the comment and start an option.
    return ' '.join(str(text).split())


def _is_hex4(text):
    return len(text) == 4 and all(c in '0123456789abcdef' for c in text)
