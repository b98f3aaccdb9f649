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
"""Human names of PCI devices from the system ``pci.ids`` database.

The format (https://pci-ids.ucw.cz/): a vendor line ``vvvv  Name``, its
devices indented by one tab ``\\tdddd  Name``, their subsystems by two
tabs; the device class section at the end starts with ``C xx  Name`` lines
and is not needed here. Comments start with ``#``.
"""

import os
import re

#: Where Debian's ``pci.ids`` package and ``hwdata`` install the database,
#: in the order they are tried.
DEFAULT_PATHS = ('/usr/share/misc/pci.ids', '/usr/share/hwdata/pci.ids')

#: The end of a vendor block: a line that is neither a device or
#: subsystem line (tab) nor a comment.
_BLOCK_END = re.compile(rb'\n[^\t#]')

#: A device line of a vendor block (subsystem lines have two tabs).
_DEVICE_LINE = re.compile(r'^\t([0-9a-fA-F]{4})  ([^\n]*)', re.M)


class PciIds:
    """Vendor and device names; empty when no database was found.

    :param vendors: vendor id -> name.
    :param devices: (vendor id, device id) -> name.
    """

    def __init__(self, vendors=None, devices=None):
        self.vendors = vendors or {}
        self.devices = devices or {}

    def vendor_name(self, vendor):
        """Name of ``vendor`` (lower-case hex), or None."""
        return self.vendors.get(vendor)

    def device_name(self, vendor, device):
        """Name of ``vendor``:``device``, or None."""
        return self.devices.get((vendor, device))

    def describe(self, vendor, device):
        """``"<vendor name> <device name>"``, falling back to the ids.

        :param vendor: vendor id, lower-case hex.
        :param device: device id, lower-case hex.
        """
        vendor_name = self.vendor_name(vendor)
        device_name = self.device_name(vendor, device)
        if vendor_name and device_name:
            return '%s %s' % (vendor_name, device_name)
        return '%s:%s' % (vendor or '????', device or '????')


def find_pci_ids(candidates=DEFAULT_PATHS):
    """First existing file of ``candidates``, or None.

    :param candidates: paths to try, in order.
    """
    for path in candidates:
        if os.path.isfile(path):
            return path
    return None


def load_pci_ids(path=None, vendors=None):
    """Read ``pci.ids``; an empty :class:`PciIds` when there is none.

    :param path: the database; None: the first of :data:`DEFAULT_PATHS`.
    :param vendors: if given, the vendor ids (lower-case hex) to read;
        only their blocks are decoded and parsed, which keeps a scan far
        cheaper than a parse of the whole 1.3 MB database.
    """
    path = path or find_pci_ids()
    if path is None:
        return PciIds()
    try:
        with open(path, 'rb') as stream:
            data = stream.read()
    except OSError:
        # NOTE: names are a convenience; an unreadable database must not
        # stop discovery, ids are shown instead.
        return PciIds()
    if vendors is None:
        text = data.decode('utf-8', 'replace')
        return parse_pci_ids(text.splitlines(True))
    return _parse_vendor_blocks(data, vendors)


def _parse_vendor_blocks(data, vendors):
    """Names of ``vendors`` and their devices, found by search in bytes."""
    vendor_names = {}
    device_names = {}
    for vendor in sorted({vendor for vendor in vendors if vendor}):
        start = _find_vendor(data, vendor.encode('ascii') + b'  ')
        if start is None:
            continue
        end = _BLOCK_END.search(data, start)
        block = data[start:end.start() + 1 if end else len(data)]
        first, _sep, rest = block.decode('utf-8', 'replace').partition('\n')
        vendor_names[vendor] = first[4:].strip()
        for device, name in _DEVICE_LINE.findall(rest):
            device_names[(vendor, device.lower())] = name.strip()
    return PciIds(vendor_names, device_names)


def _find_vendor(data, key):
    """Offset of the vendor line starting with ``key``, or None."""
    if data.startswith(key):
        return 0
    start = data.find(b'\n' + key)
    return None if start < 0 else start + 1


def parse_pci_ids(lines, vendors=None):
    """Parse ``pci.ids`` text given as an iterable of lines.

    :param lines: the lines, e.g. an open file.
    :param vendors: optional vendor ids whose devices to keep.
    """
    wanted = set(vendors) if vendors is not None else None
    vendor_names = {}
    device_names = {}
    vendor = None
    for line in lines:
        if not line.strip() or line.startswith('#'):
            continue
        if line.startswith('C '):
            break  # the device class section: nothing more to read
        if line[0] != '\t':
            vendor, name = _split(line)
            if vendor is not None:
                vendor_names[vendor] = name
            continue
        if line.startswith('\t\t') or vendor is None:
            continue  # subsystem names are not used
        if wanted is not None and vendor not in wanted:
            continue
        device, name = _split(line[1:])
        if device is not None:
            device_names[(vendor, device)] = name
    return PciIds(vendor_names, device_names)


def _split(line):
    """``"10de  NVIDIA Corporation"`` -> ``("10de", "NVIDIA ...")``."""
    ident, _sep, name = line.rstrip('\n').partition(' ')
    ident = ident.lower()
    if len(ident) != 4:
        return None, None
    return ident, name.strip()
