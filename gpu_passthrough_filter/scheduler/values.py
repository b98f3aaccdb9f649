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
"""Values read from nova's objects, and a cache keyed by value.

Nova's objects raise on an unset field and carry strings where the core
wants numbers; these helpers read them without raising.
"""

import collections
import threading


def hex_id(value):
    """A PCI id in lower case, ``''`` when it is no string."""
    return value.strip().lower() if isinstance(value, str) else ''


def number(value):
    """A float, or None when ``value`` is none, a bool, NaN or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        found = float(value)
    except (TypeError, ValueError):
        return None
    return found if found == found else None  # NaN is unknown


def field(obj, name):
    # Nova objects raise NotImplementedError (or similar) for fields that
    # were never set; a missing field means "not given".
    if obj is None:
        return None
    try:
        return getattr(obj, name)
    except Exception:
        return None


def spec_field(obj, name):
    """A field of a nova object; None when unset or ``obj`` is None.

    :param obj: a nova object (``RequestSpec``, ``Flavor``...) or None.
    :param name: the field name.
    """
    return field(obj, name)


class ValueCache(object):
    """A bounded LRU map, safe to share between the scheduler's threads.

    Host facts are kept by what they are built from (the compute node's
    uuid, every key and value of its PCI pools, its CPU and RAM usage, the
    options read), so the new ``HostState`` objects nova builds for the
    next request find the facts of every host whose state did not change.
    """

    def __init__(self):
        self._entries = collections.OrderedDict()
        self._lock = threading.Lock()
        self.hits = self.misses = 0

    def get(self, key):
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key, value, size):
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > max(size, 0):
                self._entries.popitem(last=False)

    def clear(self):
        with self._lock:
            self._entries.clear()
            self.hits = self.misses = 0

    def __len__(self):
        return len(self._entries)


#: Host facts across requests (``[gpu_passthrough] host_cache_size``).
