/* fsm_parse.h: the fsm muscle's params (a run file's map) read into a bd_fsm for agent
 * ap (muscle/fsm.c); kept apart from muscle/fsm.h, which the CUDA kernels include. */
#ifndef BODHI_MUSCLE_FSM_PARSE_H
#define BODHI_MUSCLE_FSM_PARSE_H

#include "config/plan.h"
#include "muscle/fsm.h"

/* Reads params into f for agent ap (its sensor and actuator ids resolved). Every problem
 * goes to d with its run-file position; returns BD_OK or the first problem's code. */
int bd_fsm_parse(const bd_node *params, const bd_agent_plan *ap, bd_diags *d, bd_fsm *f);

#endif
