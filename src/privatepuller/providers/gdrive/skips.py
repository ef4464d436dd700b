"""Why Google Drive leaves a file out, in a student's words."""

from ...sync.source import SkipReason


class DriveSkip(SkipReason):
    # One file Drive refuses to send (its 403 for that file: `api.file_refusal`).
    DOWNLOAD_DISABLED = "download_disabled", "downloads of this file are turned off by its owner"
    ABUSIVE = (
        "abusive",
        "flagged by Google as possibly harmful; Google does not allow downloading it",
    )
    DOWNLOAD_QUOTA = (
        "download_quota",
        "Google's download limit for this file was reached; try again later",
    )
    REFUSED = "refused", "Google Drive refused to send it"
    NOT_DOWNLOADABLE = "not_downloadable", "Google Drive cannot send this kind of file"
    # Google files and what this hub exports them as (`exports.py`).
    NOT_EXPORTABLE = "not_exportable", "cannot be exported"
    NOT_EXPORTED = "not_exported", "this hub does not convert this kind of Google file"
    EXPORT_TOO_LARGE = "export_too_large", "too large for Google to convert"
    # The folder tree.
    DANGLING_SHORTCUT = "dangling_shortcut", "a shortcut to something deleted or not shared"
    SHORTCUT_LOOP = "shortcut_loop", "a shortcut to a folder that contains it"
    TOO_DEEP = "too_deep", "too many folders deep"
    INVALID = "invalid", "Google Drive sent an unusable entry"
