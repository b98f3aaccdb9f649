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
"""Operator cordons: GPUs (or the whole host) taken out of service.

A cordon is the operator's intent, kept in one JSON file in ``[agent]
state_dir`` so that it survives agent restarts and reboots. The agent reads
the file at every cycle and marks each cordoned GPU of the inventory
(:func:`apply`); :mod:`.selection` then holds it back from new guests, the
same way as an unhealthy GPU. A cordon may expire (``--ttl``): an expired
cordon is ignored, and dropped at the next write.

The file, mode 0644 (it holds no secret)::

    {"version": 1,
     "cordons": {"0000:81:00.0": {"reason": "RMA ticket 4711",
                                  "since": 1764650000.0,
                                  "until": 1764736400.0},
                 "host": {"reason": "rack maintenance", "since": ...,
                          "until": null}}}

``"host"`` cordons every GPU of the host, present and future.

Pure module: no nova, oslo or openstacksdk import.
"""

import dataclasses
import json
import os
import re
import time
import typing

from gpu_passthrough_filter import files

#: Name of the state file in ``[agent] state_dir``.
FILE_NAME = 'cordons.json'
#: The key of a host-wide cordon.
HOST = 'host'
VERSION = 1

_ADDRESS = re.compile(r'^(?:([0-9a-f]{4,8}):)?([0-9a-f]{2}):([0-9a-f]{2})'
                      r'\.([0-7])$')
_DURATION = re.compile(r'^\s*(\d+(?:\.\d+)?)\s*([smhdw]?)\s*$')
_SECONDS = {'': 1, 's': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}


class CordonError(ValueError):
    """A cordon request or the state file is malformed."""


@dataclasses.dataclass(frozen=True)
class Cordon:
    """One cordon.

    :param target: a PCI address (``0000:81:00.0``) or :data:`HOST`.
    :param reason: why, in the operator's words.
    :param since: when it was set (seconds since the epoch).
    :param until: when it expires, None for never.
    """
    target: str
    reason: str
    since: float
    until: typing.Optional[float] = None

    def active(self, now):
        return self.until is None or now < self.until

    def describe(self):
        """``reason`` with its expiry, for logs and the nova file."""
        if self.until is None:
            return 'cordoned: %s' % self.reason
        return 'cordoned until %s: %s' % (
            time.strftime('%Y-%m-%d %H:%M:%SZ', time.gmtime(self.until)),
            self.reason)


def normalise_target(text):
    """A PCI address in sysfs' form (``0000:81:00.0``), or :data:`HOST`.

    :raises CordonError: neither.
    """
    text = text.strip().lower()
    if text == HOST:
        return HOST
    match = _ADDRESS.match(text)
    if not match:
        raise CordonError('%r is not a PCI address (DDDD:BB:SS.F or '
                          'BB:SS.F)' % text)
    domain, bus, slot, function = match.groups()
    return '%04x:%s:%s.%s' % (int(domain or '0', 16), bus, slot, function)


def parse_duration(text):
    """Seconds of ``text`` (``90``, ``90s``, ``30m``, ``2h``, ``1d``, ``1w``).

    :raises CordonError: malformed or not positive.
    """
    match = _DURATION.match(text or '')
    if not match or float(match.group(1)) <= 0:
        raise CordonError('%r is not a duration (a positive number with an '
                          'optional unit s, m, h, d or w)' % text)
    return float(match.group(1)) * _SECONDS[match.group(2)]


class CordonBook:
    """The cordons of ``state_dir``, read and written whole.

    :param state_dir: ``[agent] state_dir``.
    :param clock: ``() -> seconds since the epoch``; tests fix it.
    """

    def __init__(self, state_dir, clock=time.time):
        self.path = os.path.join(state_dir, FILE_NAME)
        self.clock = clock
        #: What the last :meth:`load` could not read, one line per entry.
        self.errors = []

    def load(self):
        """Every cordon of the file, active or not, by target.

        A missing file is no cordon. An entry that cannot be read is left
        out and named in :attr:`errors`; the others stand.

        :raises CordonError: the file exists but is no cordon file (it is
            not guessed at: losing a cordon would put a GPU the operator
            took out of service back into service).
        """
        self.errors = []
        try:
            with open(self.path, encoding='utf-8') as stream:
                text = stream.read()
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise CordonError('cannot read %s: %s' % (self.path, exc))
        try:
            entries = json.loads(text)['cordons']
            if not isinstance(entries, dict):
                raise TypeError('"cordons" is not an object')
        except (ValueError, KeyError, TypeError) as exc:
            raise CordonError('%s is not a cordon file (%s: %s)' % (
                self.path, type(exc).__name__, exc))
        cordons = {}
        for target, entry in entries.items():
            try:
                cordon = _from_json(target, entry)
            except (CordonError, KeyError, TypeError, ValueError) as exc:
                self.errors.append('%s: entry %r ignored: %s' % (
                    self.path, target, exc))
                continue
            cordons[cordon.target] = cordon
        return cordons

    def active(self):
        """The cordons in force now, by target."""
        now = self.clock()
        return {target: cordon for target, cordon in self.load().items()
                if cordon.active(now)}

    def cordon(self, targets, reason, ttl=None):
        """Add (or replace) cordons; expired ones are dropped.

        :param targets: addresses or :data:`HOST`, any accepted spelling.
        :param reason: non-empty text.
        :param ttl: seconds until it expires, None for never.
        :returns: the new :class:`Cordon` objects.
        """
        reason = ' '.join((reason or '').split())
        if not reason:
            raise CordonError('a cordon needs a reason (--reason)')
        now = self.clock()
        until = None if ttl is None else now + ttl
        added = [Cordon(normalise_target(target), reason, now, until)
                 for target in targets]
        cordons = self.active()
        cordons.update((cordon.target, cordon) for cordon in added)
        self._save(cordons)
        return added

    def uncordon(self, targets):
        """Remove cordons. :returns: the targets that were cordoned."""
        wanted = {normalise_target(target) for target in targets}
        cordons = self.active()
        removed = sorted(wanted & set(cordons))
        self._save({target: cordon for target, cordon in cordons.items()
                    if target not in wanted})
        return removed

    def _save(self, cordons):
        body = {'version': VERSION, 'cordons': {
            target: {'reason': cordon.reason, 'since': cordon.since,
                     'until': cordon.until}
            for target, cordon in sorted(cordons.items())}}
        try:
            os.makedirs(os.path.dirname(self.path), exist_ok=True)
            files.replace_atomically(
                self.path, json.dumps(body, indent=2, sort_keys=True) + '\n')
        except OSError as exc:
            raise CordonError('cannot write %s: %s' % (self.path, exc))


def _from_json(target, entry):
    reason = entry['reason']
    if not isinstance(reason, str) or not reason.strip():
        raise CordonError('no reason')
    until = entry.get('until')
    return Cordon(normalise_target(target), reason, float(entry['since']),
                  None if until is None else float(until))


def apply(inventory, cordons):
    """Mark the cordoned GPUs of ``inventory``, in place.

    :param inventory: a :class:`~gpu_passthrough_filter.inventory.model.
        HostInventory`.
    :param cordons: the active cordons, by target (:meth:`CordonBook.
        active`).
    :returns: the inventory.
    """
    host_wide = cordons.get(HOST)
    for gpu in inventory.gpus:
        cordon = cordons.get(gpu.address) or host_wide
        gpu.cordon = cordon.describe() if cordon else None
    return inventory
