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

# NOTE: nova's test packages monkey-patch the process with eventlet when they
# are first imported. Left to them, that happens halfway through a test
# worker's run (at the first module that imports nova's fakes), and modules
# loaded before keep unpatched references: subprocess calls then fail inside
# eventlet's hub. So every test process applies nova's own patching first,
# as nova's test packages do, before anything else is imported. Set
# OS_NOVA_DISABLE_EVENTLET_PATCHING=true to run in native threading mode.
from nova import monkey_patch ; monkey_patch.patch()  # noqa
