#!/bin/sh
# The job: write a result to the user's home on /arc (it outlives the job) and say so.
set -e
echo "job ran on $(hostname) as $(id -un)" > "$HOME/job-result.txt"
echo "job done"
