//! AdminService: projects, registration of tasks, workflows and launch plans, and reads.
