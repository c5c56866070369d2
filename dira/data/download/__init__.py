"""Obtaining the raw datasets: the catalog of sources, verified resumable downloads, safe unpacking and the
check that a dataset's root holds its release layout (with the steps to obtain it when it does not).

``download_dataset`` fetches the publicly downloadable sets (ChestX-ray14's image tarballs, LUNA16, Montgomery);
``check_layout`` covers every set, the gated ones included. ``DIRA_DOWNLOAD_BASE_URL`` (or ``base_url=``) points
every download at a mirror laid out as ``<base>/<dataset>/<file name>``.
"""

from dira.data.download.catalog import Dataset, RemoteFile, load_catalog
from dira.data.download.dataset import BASE_URL_ENV, check_layout, download_dataset
from dira.data.download.extract import safe_extract
from dira.data.download.http import fetch
from dira.data.download.verify import verify

__all__ = [
    "BASE_URL_ENV",
    "Dataset",
    "RemoteFile",
    "check_layout",
    "download_dataset",
    "fetch",
    "load_catalog",
    "safe_extract",
    "verify",
]
