"""The sample course folder served by the fake Drive (tests, ``privatepuller demo --drive``)."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from .content import COLAB

if TYPE_CHECKING:
    from .fake import FakeDrive, FakeItem

IPYNB = "application/x-ipynb+json"


def notebook(*cells: tuple[str, str]) -> bytes:
    """A small nbformat-4 notebook; ``cells`` are ``(cell_type, source)`` pairs."""
    nb = {
        "cells": [
            {"cell_type": kind, "metadata": {}, "source": source}
            | ({"execution_count": None, "outputs": []} if kind == "code" else {})
            for kind, source in cells
        ],
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python"},
        },
        "nbformat": 4,
        "nbformat_minor": 5,
    }
    return json.dumps(nb, indent=1).encode("utf-8")


def populate_demo(drive: FakeDrive, *, share_with: str) -> FakeItem:
    """Create "Intro to Data", shared with ``share_with``, and return the folder.

    It has notebooks, a Colab notebook, a Doc, a Sheet, Slides, a Form (not exportable),
    subfolders, a folder shortcut, a dangling and a looping shortcut, a trashed file, and
    awkward names: duplicates in one folder, ``/`` in a name, case-only duplicates.
    """
    course = drive.add_folder("Intro to Data", share_with=share_with)
    add = drive.add_file
    add(
        "README.md",
        course.id,
        b"# Intro to Data\n\nStart with `01-welcome.ipynb`.\n",
        mime_type="text/markdown",
    )
    add(
        "01-welcome.ipynb",
        course.id,
        notebook(("markdown", "# Welcome"), ("code", "print('hello, data')")),
        mime_type=IPYNB,
    )
    add(
        "02-pandas.ipynb",
        course.id,
        notebook(("code", "import pandas as pd\ndf = pd.read_csv('data/iris.csv')")),
        mime_type=IPYNB,
    )
    add(
        "Lab 1 (Colab).ipynb",
        course.id,
        notebook(("markdown", "Made in Colab"), ("code", "1 + 1")),
        mime_type=COLAB,
    )
    drive.add_google_doc("Syllabus", course.id, "document", "# Syllabus\n\nWeek 1: tables.\n")
    drive.add_google_doc("Grades template", course.id, "spreadsheet", "name,grade\nAda,A\n")
    drive.add_google_doc("Lecture 1", course.id, "presentation", "Lecture 1\nWhat is data?\n")
    drive.add_google_doc("Feedback form", course.id, "form")

    data = drive.add_folder("data", course.id)
    add("iris.csv", data.id, b"sepal_length,species\n5.1,setosa\n", mime_type="text/csv")
    add("notes.txt", data.id, b"first notes\n", mime_type="text/plain")
    add("notes.txt", data.id, b"second notes, same name\n", mime_type="text/plain")
    add("Results.csv", data.id, b"x\n1\n", mime_type="text/csv")
    add("results.csv", data.id, b"x\n2\n", mime_type="text/csv")
    add("2024/25 schedule.txt", data.id, b"Term 1\n", mime_type="text/plain")
    add("old.csv", data.id, b"stale\n", mime_type="text/csv", trashed=True)

    homework = drive.add_folder("homework", course.id)
    add("hw1.ipynb", homework.id, notebook(("code", "# your answer here")), mime_type=IPYNB)

    drive.add_shortcut("Link to data", course.id, data.id)
    drive.add_shortcut("Back to course (loop)", data.id, course.id)
    gone = add("removed.txt", homework.id, b"gone\n", mime_type="text/plain")
    drive.add_shortcut("Link to removed file", homework.id, gone.id)
    drive.delete(gone.id)
    return course
