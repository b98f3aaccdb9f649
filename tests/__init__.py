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

import os

# NOTE: nova's test packages call nova's monkey patching when they are first
# imported. Left to them, that happens halfway through a test worker's run
# (at the first module importing nova's fakes), and modules loaded before
# keep unpatched references: subprocess calls then fail inside eventlet's
# hub. Nova 34 deprecates eventlet for native threading, so every test
# process here chooses native threading first, before any other import;
# nova then refuses eventlet for the rest of the process. Set
# OS_NOVA_DISABLE_EVENTLET_PATCHING=false to test under eventlet instead.
os.environ.setdefault('OS_NOVA_DISABLE_EVENTLET_PATCHING', 'true')

from nova import monkey_patch  # noqa: E402
monkey_patch.patch()
