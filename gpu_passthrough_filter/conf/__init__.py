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
"""Configuration options, one module per group (as placement does).

No global ``ConfigOpts`` lives here: callers pass theirs in. The scheduler
plugins register :mod:`.scheduler` options on nova's ``CONF``; the agent
builds its own ``ConfigOpts`` with :func:`register_agent_opts`.
"""

from gpu_passthrough_filter.conf import agent
from gpu_passthrough_filter.conf import placement
from gpu_passthrough_filter.conf import publishers
from gpu_passthrough_filter.conf import scheduler


def register_scheduler_opts(conf):
    """Register the ``[gpu_passthrough]`` options read inside nova."""
    scheduler.register_opts(conf)


def register_agent_opts(conf):
    """Register every option of the agent's own configuration file."""
    agent.register_opts(conf)
    placement.register_opts(conf)
    publishers.register_opts(conf)
