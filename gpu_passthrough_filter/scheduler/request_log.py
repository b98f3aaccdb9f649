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
"""The requests this scheduler process has filtered, for learning scorers.

Nova skips the weighers when at most one host passed the filters, and
those are often the requests that matter most to a workload profile (the
8-GPU guests only a few hosts can take). GPUPassthroughFilter runs for
every request, so it records each one here; GPUPassthroughWeigher reads
what was recorded since it last looked and feeds its learning scorers.
"""

import collections
import itertools
import threading


class RequestLog(object):
    """A bounded, thread-safe log of recent requests with sequence numbers.

    :param size: requests kept; a reader that falls further behind loses
        the oldest.
    """

    def __init__(self, size=4096):
        self._entries = collections.deque(maxlen=size)
        self._numbers = itertools.count(1)
        self._lock = threading.Lock()
        #: The ``RequestSpec`` of the last record (identity only).
        self.last_spec = None

    def record(self, spec_obj, request):
        """Remember one request (a :class:`~..policy.model.GPURequest`)."""
        with self._lock:
            self._entries.append((next(self._numbers), request))
            self.last_spec = spec_obj

    def cursor(self):
        """The number of the last record: read from there on."""
        with self._lock:
            return self._entries[-1][0] if self._entries else 0

    def since(self, cursor):
        """``(new cursor, requests recorded after cursor)``."""
        with self._lock:
            new = [(number, request) for number, request in self._entries
                   if number > cursor]
        if not new:
            return cursor, []
        return new[-1][0], [request for _number, request in new]


#: The log of this scheduler process.
REQUESTS = RequestLog()
