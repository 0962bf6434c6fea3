/* Who may do what in a room: the one table every decision reads, for the REST
 * routes, the edge's channel joins and the other services' questions. */
#include "rooms.h"

#include <stdio.h>
#include <string.h>

static const char *const role_names[] = {NULL, "member", "moderator", "admin"};

static const char *const action_names[ROOMS_ACT__COUNT] = {
    [ROOMS_ACT_READ] = "read",
    [ROOMS_ACT_SEND] = "send",
    [ROOMS_ACT_JOIN] = "join",
    [ROOMS_ACT_LEAVE] = "leave",
    [ROOMS_ACT_INVITE] = "invite",
    [ROOMS_ACT_UPDATE] = "update",
    [ROOMS_ACT_DELETE] = "delete",
    [ROOMS_ACT_SET_ROLE] = "set_role",
    [ROOMS_ACT_REMOVE_MEMBER] = "remove_member",
    [ROOMS_ACT_MODERATE] = "moderate",
};

const char *rooms_role_name(rooms_role r)
{
    return r >= ROOMS_OUTSIDER && r <= ROOMS_ADMIN ? role_names[r] : NULL;
}

bool rooms_role_parse(const char *s, rooms_role *out)
{
    for (rooms_role r = ROOMS_MEMBER; r <= ROOMS_ADMIN; r++) {
        if (s != NULL && strcmp(s, role_names[r]) == 0) {
            *out = r;
            return true;
        }
    }
    return false;
}

const char *rooms_action_name(rooms_action a)
{
    return a < ROOMS_ACT__COUNT ? action_names[a] : "?";
}

bool rooms_action_parse(const char *s, rooms_action *out)
{
    for (int a = 0; a < ROOMS_ACT__COUNT; a++) {
        if (s != NULL && strcmp(s, action_names[a]) == 0) {
            *out = (rooms_action)a;
            return true;
        }
    }
    return false;
}

/* What each relation may do. PUB/PRIV: only in public or private rooms. */
enum { NO = 0, YES = 1, PUB = 2, MODS_ONLY_MEMBERS = 3 };

/* clang-format off */
static const unsigned char table[ROOMS_ACT__COUNT][4] = {
    /*                          outsider member moderator admin */
    [ROOMS_ACT_READ]          = {NO,  YES, YES,               YES},
    [ROOMS_ACT_SEND]          = {NO,  YES, YES,               YES},
    [ROOMS_ACT_JOIN]          = {PUB, YES, YES,               YES},
    [ROOMS_ACT_LEAVE]         = {NO,  YES, YES,               YES},
    [ROOMS_ACT_INVITE]        = {NO,  PUB, YES,               YES},
    [ROOMS_ACT_UPDATE]        = {NO,  NO,  NO,                YES},
    [ROOMS_ACT_DELETE]        = {NO,  NO,  NO,                YES},
    [ROOMS_ACT_SET_ROLE]      = {NO,  NO,  NO,                YES},
    [ROOMS_ACT_REMOVE_MEMBER] = {NO,  NO,  MODS_ONLY_MEMBERS, YES},
    [ROOMS_ACT_MODERATE]      = {NO,  NO,  YES,               YES},
};
/* clang-format on */

nt_status rooms_authz(rooms_action action, rooms_role role, bool is_private, rooms_role target,
                      const char *room_id, char *msg, size_t msglen)
{
    if (action >= ROOMS_ACT__COUNT || role < ROOMS_OUTSIDER || role > ROOMS_ADMIN) {
        snprintf(msg, msglen, "unknown action");
        return NT_EFORBIDDEN;
    }
    unsigned char rule = table[action][role];
    if (rule == YES || (rule == PUB && !is_private) ||
        (rule == MODS_ONLY_MEMBERS && target == ROOMS_MEMBER))
        return NT_OK;
    if (role == ROOMS_OUTSIDER) {
        /* An outsider learns nothing about a private room, not even that it exists. */
        if (is_private) {
            snprintf(msg, msglen, "room %s does not exist", room_id);
            return NT_ENOTFOUND;
        }
        snprintf(msg, msglen, "you are not a member of room %s; join it first", room_id);
        return NT_EFORBIDDEN;
    }
    switch (action) {
    case ROOMS_ACT_INVITE:
        snprintf(msg, msglen, "only admins and moderators may invite to a private room");
        break;
    case ROOMS_ACT_REMOVE_MEMBER:
        snprintf(msg, msglen,
                 role == ROOMS_MODERATOR ? "moderators may remove plain members only"
                                         : "only admins and moderators may remove members");
        break;
    case ROOMS_ACT_MODERATE:
        snprintf(msg, msglen, "only admins and moderators may moderate this room");
        break;
    default:
        snprintf(msg, msglen, "only an admin of the room may %s it",
                 action == ROOMS_ACT_SET_ROLE ? "change roles in" : rooms_action_name(action));
        break;
    }
    return NT_EFORBIDDEN;
}
