"""JSON shapes of Canvas API objects, as canvas-lms renders them.

Sources: `lib/api/v1/attachment.rb` (File), `lib/api/v1/folders.rb` (Folder), the
File/Folder models documented in `app/controllers/files_controller.rb` and
`folders_controller.rb`, `lib/api/v1/course_json.rb` (a Course's `enrollments`),
`lib/api/v1/group.rb` (Group), and `lib/canvas/oauth/token.rb` (token responses).

Files as Canvas renders them since its 25 March 2026 deploy (Instructure's "Modernizing our
Files API" announcement): no `uuid`, and a `url` without `verifier`, which works only with the
caller's token in the Authorization header. `verifier_urls=True` renders them as older Canvas
did (`uuid`, and `verifier=<uuid>` in the `url`).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from .model import (
    FakeCourse,
    FakeEnrollment,
    FakeFile,
    FakeFolder,
    FakeGroup,
    FakeUser,
    iso,
    mime_class,
)

Json = dict[str, Any]


def file_locked_for(file: FakeFile, *, manage: bool, now: datetime) -> bool:
    """Attachment#locked_for?: own lock, a locked folder above it, or a module lock."""
    if manage:
        return False
    return (
        file.currently_locked(now)
        or file.folder.locked_inherited(now)
        or file.module_lock is not None
    )


def file_hidden(file: FakeFile) -> bool:
    """Attachment#hidden?: hidden itself or inside a hidden folder."""
    return file.hidden or file.folder.hidden_inherited()


def _lock_explanation(file: FakeFile, now: datetime) -> str:
    if file.lock_explanation:
        return file.lock_explanation
    if file.module_lock is not None:
        return (
            f"This file is part of the module <b>{file.module_lock}</b> "
            "and hasn't been unlocked yet."
        )
    if file.unlock_at is not None and now < file.unlock_at:
        return f"This file is locked until {iso(file.unlock_at)}."
    if file.lock_at is not None and now > file.lock_at:
        return f"This file was locked {iso(file.lock_at)}."
    return "This file is currently locked."


def _lock_info(file: FakeFile) -> Json:
    info: Json = {"asset_string": f"attachment_{file.id}"}
    if file.unlock_at is not None:
        info["unlock_at"] = iso(file.unlock_at)
    if file.lock_at is not None:
        info["lock_at"] = iso(file.lock_at)
    if file.module_lock is not None:
        info["context_module"] = {"name": file.module_lock}
    return info


def download_url(base_url: str, file: FakeFile, *, verifier: bool = False) -> str:
    """The file's `url`: file_download_url(attachment, download_frd: 1[, verifier: uuid])."""
    url = f"{base_url}/files/{file.id}/download?download_frd=1"
    return f"{url}&verifier={file.uuid}" if verifier else url


def file_json(
    file: FakeFile,
    *,
    base_url: str,
    manage: bool,
    now: datetime,
    include_preview_url: bool = False,
    verifier_urls: bool = False,
) -> Json:
    locked_for = file_locked_for(file, manage=manage, now=now)
    hidden = file_hidden(file)
    data: Json = {"id": file.id}
    if verifier_urls:
        data["uuid"] = file.uuid
    data |= {
        "folder_id": file.folder.id,
        "display_name": file.display_name,
        "filename": file.filename,
        "upload_status": "success",
        "content-type": file.content_type,
        # Canvas blanks the download URL (and thumbnail) when the user may not download.
        "url": "" if locked_for else download_url(base_url, file, verifier=verifier_urls),
        "size": file.size,
        "created_at": iso(file.created_at),
        "updated_at": iso(file.updated_at),
        "unlock_at": iso(file.unlock_at),
        "locked": file.locked,
        "hidden": hidden,
        "lock_at": iso(file.lock_at),
        "hidden_for_user": hidden and not manage,
        "thumbnail_url": "" if locked_for else None,
        "modified_at": iso(file.modified_at),
        "mime_class": mime_class(file.content_type),
        "media_entry_id": None,
        "category": "uncategorized",
        "locked_for_user": locked_for,
        "visibility_level": "inherit",
    }
    if locked_for:
        data["lock_info"] = _lock_info(file)
        data["lock_explanation"] = _lock_explanation(file, now)
    if include_preview_url:
        data["preview_url"] = None
    return data


def folder_json(folder: FakeFolder, *, base_url: str, manage: bool, now: datetime) -> Json:
    space = folder.space
    if manage:
        files_count = len(folder.files)
        folders_count = len(folder.folders)
    else:
        # folder.attachments.active (hidden files excluded, locked ones counted) and
        # sub_folders.active.not_hidden, as lib/api/v1/folders.rb counts for students.
        files_count = sum(1 for f in folder.files.values() if not f.hidden)
        folders_count = sum(1 for f in folder.folders.values() if not f.hidden)
    return {
        "id": folder.id,
        "name": folder.name,
        "full_name": folder.full_name,
        "context_id": space.context_id,
        "context_type": space.context_type,
        "parent_folder_id": folder.parent.id if folder.parent else None,
        "created_at": iso(folder.created_at),
        "updated_at": iso(folder.updated_at),
        "lock_at": iso(folder.lock_at),
        "unlock_at": iso(folder.unlock_at),
        "position": folder.position,
        "locked": folder.locked,
        "folders_url": f"{base_url}/api/v1/folders/{folder.id}/folders",
        "files_url": f"{base_url}/api/v1/folders/{folder.id}/files",
        "files_count": files_count,
        "folders_count": folders_count,
        "hidden": folder.hidden_inherited(),
        # Folder#currently_locked counts a hidden folder as locked.
        "locked_for_user": (not manage) and (folder.currently_locked(now) or folder.hidden),
        "hidden_for_user": (not manage) and folder.hidden_inherited(),
        "for_submissions": False,
        "can_upload": manage,
    }


def enrollment_json(enrollment: FakeEnrollment) -> Json:
    """CourseJson#default_enrollment_attributes (+ associated_user_id for an observer)."""
    data: Json = {
        "type": enrollment.type,
        "role": enrollment.role,
        "role_id": enrollment.role_id,
        "user_id": enrollment.user_id,
        "enrollment_state": enrollment.state,
        "limit_privileges_to_course_section": False,
    }
    if enrollment.type == "observer" and enrollment.associated_user_id is not None:
        data["associated_user_id"] = enrollment.associated_user_id
    return data


def course_json(
    course: FakeCourse,
    *,
    enrollments: list[FakeEnrollment],
    base_url: str,
    includes: frozenset[str] = frozenset(),
) -> Json:
    """A Course as `GET /api/v1/courses/:id` and `GET /api/v1/courses` render it: `enrollments`
    are the caller's own (those the request selected). Of the `include[]` values only
    `concluded` adds a field here; the others are accepted and left out."""
    data: Json = {
        "id": course.id,
        "name": course.name,
        "account_id": 1,
        "uuid": course.uuid,
        "start_at": None,
        "grading_standard_id": None,
        "is_public": False,
        "created_at": iso(course.created_at),
        "course_code": course.course_code,
        "default_view": "modules",
        "root_account_id": 1,
        "enrollment_term_id": 1,
        "license": "private",
        "end_at": None,
        "public_syllabus": False,
        "public_syllabus_to_auth": False,
        "storage_quota_mb": 500,
        "is_public_to_auth_users": False,
        "hide_final_grades": False,
        "apply_assignment_group_weights": False,
        "calendar": {"ics": f"{base_url}/feeds/calendars/course_{course.uuid}.ics"},
        "time_zone": "Etc/UTC",
        "blueprint": False,
        "template": False,
        "enrollments": [enrollment_json(e) for e in enrollments],
        "restrict_enrollments_to_course_dates": False,
        "workflow_state": "available",
    }
    if "concluded" in includes:
        data["concluded"] = course.concluded
    return data


def group_json(group: FakeGroup) -> Json:
    """Api::V1::Group#group_json without include[] (lib/api/v1/group.rb); `context_type`
    and `course_id` or `account_id` come from Api::V1::Context#context_data."""
    context: Json = (
        {"context_type": "Course", "course_id": group.course.id}
        if group.course
        else {"context_type": "Account", "account_id": 1}
    )
    return {
        "id": group.id,
        "name": group.name,
        "description": None,
        "is_public": False,
        "join_level": "invitation_only",
        "group_category_id": 1,
        "max_membership": None,
        "created_at": iso(group.created_at),
        "members_count": len(group.members),
        "storage_quota_mb": 50,
        **context,
        "avatar_url": None,
        "role": None,
        "leader": None,
        "has_submission": False,
        "concluded": group.concluded,
    }


def user_json(user: FakeUser) -> Json:
    return {
        "id": user.id,
        "name": user.name,
        "created_at": None,
        "sortable_name": user.sortable_name,
        "short_name": user.name,
        "avatar_url": None,
        "locale": None,
        "effective_locale": "en",
        "permissions": {"can_update_name": False, "can_update_avatar": False},
    }


def profile_json(user: FakeUser) -> Json:
    return {
        "id": user.id,
        "name": user.name,
        "short_name": user.name,
        "sortable_name": user.sortable_name,
        "title": None,
        "bio": None,
        "pronunciation": None,
        "primary_email": f"{user.login_id}@example.edu",
        "login_id": user.login_id,
        "integration_id": None,
        "time_zone": "Etc/UTC",
        "locale": None,
        "effective_locale": "en",
        "avatar_url": None,
        "calendar": {"ics": f"/feeds/calendars/user_{user.id}.ics"},
        "lti_user_id": None,
        "k5_user": False,
    }


def token_user_json(user: FakeUser) -> Json:
    return {"id": user.id, "name": user.name, "global_id": str(user.id), "effective_locale": "en"}
