"""The teaching kit: a student edition without solutions, grading with the exercise checkers, and
the data behind the instructor's guide (the page "For instructors").

* `exercises`: reads a chapter's exercises and their gated solutions, and splits each solution
  into what the student writes (the answer cell) and the checker call (the check cell);
* `student`: writes the student edition (`make student`, `make student-book`);
* `grade`: executes a student's notebook and runs every checker (`make grade NOTEBOOK=...`);
* `kit`: the guide's data (objectives, exercises, syllabus) and the measured run times, checked
  against the chapters, rendered as tables for the guide and the README.
"""
