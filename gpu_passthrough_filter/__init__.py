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


def __getattr__(name):
    """``__version__`` and ``version_info``, computed on first use.

    NOTE: pbr reads the installed distribution's metadata through
    importlib.metadata, a third of ``gpu-passthrough-agent discover``'s
    start-up; no command but ``--version`` needs it.
    """
    if name not in ('__version__', 'version_info'):
        raise AttributeError('module %r has no attribute %r'
                             % (__name__, name))
    import pbr.version
    info = pbr.version.VersionInfo('gpu-passthrough-filter')
    # The full release string, as pip shows it (``0.0.1.dev145``), not
    # the bare ``version_string()`` (``0.0.1``).
    globals().update(version_info=info, __version__=info.release_string())
    return globals()[name]
