import { meetingsV1 } from '@calsync/proto';
import { listQuery, meetingView } from './meeting-view';

describe('listQuery', () => {
  it('turns the query string into a ListMeetings request for the signed-in user only', () => {
    expect(
      listQuery('user-1', {
        from: '2026-01-01T00:00:00Z',
        to: '2026-02-01',
        status: 'canceled',
        limit: '50',
        cursor: 'abc',
      }),
    ).toEqual({
      userId: 'user-1',
      from: new Date('2026-01-01T00:00:00Z'),
      to: new Date('2026-02-01T00:00:00Z'),
      status: meetingsV1.MeetingStatus.MEETING_STATUS_CANCELED,
      pageSize: 50,
      cursor: 'abc',
    });
    expect(listQuery('user-1', {})).toEqual({
      userId: 'user-1',
      status: meetingsV1.MeetingStatus.MEETING_STATUS_UNSPECIFIED,
      pageSize: 0,
      cursor: '',
    });
  });

  it.each([
    [{ from: 'yesterday' }, /from/],
    [{ to: '2026-13-45T00:00:00Z' }, /to/],
    [{ from: '2026-02-01T00:00:00Z', to: '2026-01-01T00:00:00Z' }, /before/],
    [{ status: 'deleted' }, /status/],
    [{ limit: '0' }, /limit/],
    [{ limit: '101' }, /limit/],
    [{ limit: '1.5' }, /limit/],
    [{ status: ['active', 'canceled'] }, /once/],
    [{ cursor: 'x'.repeat(2000) }, /cursor/],
    [{ userId: 'someone-else' }, /unknown parameter "userId"/],
    [{ from: '2026-02-30' }, /"from"/],
    [{ to: '2026-01-01T00:00:60Z' }, /"to"/],
    [{ from: '0000-12-31T23:00:00+02:00' }, /"from" must be in the years/],
  ])('refuses %p with 400', (query, message) => {
    expect(() => listQuery('user-1', query)).toThrow(
      expect.objectContaining({ status: 400, message: expect.stringMatching(message) }),
    );
  });
});

describe('meetingView', () => {
  it('shows a meeting with names for statuses and ISO timestamps, and without the user id', () => {
    const view = meetingView({
      id: 'm1',
      userId: 'user-1',
      scheduledEventUri: 'https://api.calendly.com/scheduled_events/E1',
      name: 'Intro',
      eventTypeUri: 'https://api.calendly.com/event_types/T1',
      status: meetingsV1.MeetingStatus.MEETING_STATUS_ACTIVE,
      startTime: new Date('2026-03-01T10:00:00Z'),
      endTime: new Date('2026-03-01T10:30:00Z'),
      location: { type: 'zoom', location: '', joinUrl: 'https://zoom.example/j/1' },
      invitees: [
        {
          uri: 'https://api.calendly.com/scheduled_events/E1/invitees/I1',
          name: 'Ada',
          email: 'ada@example.com',
          status: meetingsV1.InviteeStatus.INVITEE_STATUS_CANCELED,
          timezone: 'Europe/London',
          answers: [{ question: 'Why?', answer: 'Because', position: 0 }],
          cancellation: {
            canceledBy: 'Ada',
            reason: 'ill',
            cancelerType: 'invitee',
            canceledAt: new Date('2026-02-01T00:00:00Z'),
          },
          rescheduled: false,
          oldInviteeUri: '',
          newInviteeUri: '',
          noShow: false,
        },
      ],
    });
    expect(view).not.toHaveProperty('userId');
    expect(view).toMatchObject({
      id: 'm1',
      status: 'active',
      startTime: '2026-03-01T10:00:00.000Z',
      location: { type: 'zoom', joinUrl: 'https://zoom.example/j/1' },
      cancellation: null,
      invitees: [
        {
          status: 'canceled',
          cancellation: { cancelerType: 'invitee', canceledAt: '2026-02-01T00:00:00.000Z' },
          oldInviteeUri: null,
          noShowAt: null,
        },
      ],
    });
  });
});
