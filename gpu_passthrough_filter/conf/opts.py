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
"""Entry points of ``oslo.config.opts`` for oslo-config-generator."""

from gpu_passthrough_filter.conf import agent
from gpu_passthrough_filter.conf import placement
from gpu_passthrough_filter.conf import publishers
from gpu_passthrough_filter.conf import scheduler


def _as_list(*option_maps):
    return [(group, opts) for option_map in option_maps
            for group, opts in option_map.items()]


def list_scheduler_opts():
    """Options read inside nova.conf by the scheduler plugins."""
    return _as_list(scheduler.list_opts())


def list_agent_opts():
    """Options of gpu-passthrough-agent's own configuration file."""
    return _as_list(agent.list_opts(), placement.list_opts(),
                    publishers.list_opts())
