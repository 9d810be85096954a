import os


class NPUBasics(object):
    """npu_common.py NPUBasics: a process-wide singleton; its job info is read once, from JOB_ID when no job file."""
    _instance = None
    _job_info = None

    def __new__(cls, file_name=""):
        if cls._instance is None:
            cls._instance = super(NPUBasics, cls).__new__(cls)
            cls._instance._job_info = _read_job_info()
        return cls._instance

    @property
    def jobinfo(self):
        return self._job_info

    def size(self):
        # npu_common.py: with no JOB_ID the job info is None -> AttributeError: ... '_rank_size'
        return self._job_info._rank_size


class _JobInfo(object):
    def __init__(self, rank_size):
        self._rank_size = rank_size


def _read_job_info():
    if not os.getenv("JOB_ID", ""):
        return None   # npu_common.py _read_job_info: logs 'Error:can not get job config from env', returns None
    rank_size = os.getenv("RANK_SIZE", "1")
    return _JobInfo(int(rank_size) if rank_size.isdigit() else 1)
