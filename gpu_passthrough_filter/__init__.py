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
"""IOMMU-safe, NUMA/PCIe-aware GPU passthrough for OpenStack Nova."""

import pbr.version

version_info = pbr.version.VersionInfo('gpu-passthrough-filter')
#: The full release string, as pip shows it (``0.0.1.dev145``), not the
#: bare ``version_string()`` (``0.0.1``).
__version__ = version_info.release_string()
